//go:build !unix

package node

import "net"

// listenUnixPrivate creates the socket; the caller sets its mode at once.
// Platforms without a umask have no mode bits to narrow at creation.
func listenUnixPrivate(path string) (*net.UnixListener, error) {
	return net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
}
