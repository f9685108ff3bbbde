//go:build !unix

package unixsock

import (
	"io/fs"
	"net"
)

// listenNarrow creates the socket; Listen sets its mode at once.
// Platforms without a umask have no mode bits to narrow at creation.
func listenNarrow(path string, _ fs.FileMode) (*net.UnixListener, error) {
	return net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
}
