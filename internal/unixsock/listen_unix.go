//go:build unix

package unixsock

import (
	"io/fs"
	"net"
	"sync"
	"syscall"
)

var umaskMu sync.Mutex

// listenNarrow creates the socket with at most mode from the start: the
// umask is process-wide, so it is narrowed only around the bind, which
// leaves no moment at which a user outside mode could connect.
func listenNarrow(path string, mode fs.FileMode) (*net.UnixListener, error) {
	umaskMu.Lock()
	old := syscall.Umask(int(^mode & 0o777))
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	umaskMu.Unlock()
	return ln, err
}
