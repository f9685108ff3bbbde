//go:build unix

package node

import (
	"net"
	"sync"
	"syscall"
)

var umaskMu sync.Mutex

// listenUnixPrivate creates the socket with mode 0600 from the start: the
// umask is process-wide, so it is narrowed only around the bind, which
// leaves no moment at which another user could connect.
func listenUnixPrivate(path string) (*net.UnixListener, error) {
	umaskMu.Lock()
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	umaskMu.Unlock()
	return ln, err
}
