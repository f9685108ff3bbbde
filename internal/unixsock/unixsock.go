// Package unixsock creates the node's local Unix stream sockets (the control
// socket, the shim socket): with a chosen mode from the first moment, over
// a stale socket a dead process left behind, but never over a live one or
// over a file that is not a socket.
package unixsock

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

var (
	// ErrInUse: a process answers on the path.
	ErrInUse = errors.New("another process answers on this socket")
	// ErrNotSocket: a file that is not a socket is in the way.
	ErrNotSocket = errors.New("a file that is not a socket is in the way; refusing to replace it")
)

// Listen creates a Unix stream socket at path with the given mode (its
// directory with 0700 if missing, or 0750 when the mode gives the group
// access, so the group can reach the socket). A stale socket (nothing
// answers on it) is removed first and reported through removedStale (may
// be nil). Errors wrap ErrInUse or ErrNotSocket where those apply; the
// caller adds the path and its own advice.
func Listen(path string, mode fs.FileMode, removedStale func()) (*net.UnixListener, error) {
	dirMode := fs.FileMode(0o700)
	if mode&0o070 != 0 {
		dirMode = 0o750
	}
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return nil, fmt.Errorf("cannot create its directory: %v", UnwrapPathErr(err))
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, ErrNotSocket
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		switch {
		case err == nil:
			c.Close()
			return nil, ErrInUse
		case errors.Is(err, syscall.ECONNREFUSED):
			// Stale: a process that died without cleaning up.
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("cannot remove the stale socket: %v", UnwrapPathErr(err))
			}
			if removedStale != nil {
				removedStale()
			}
		default:
			return nil, fmt.Errorf("cannot tell whether another process uses it: %v", UnwrapOpErr(err))
		}
	}
	ln, err := listenNarrow(path, mode)
	if err != nil {
		return nil, UnwrapOpErr(err)
	}
	// listenNarrow already created it with mode where the platform has a
	// umask; say so explicitly everywhere, before the first Accept.
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, UnwrapPathErr(err)
	}
	return ln, nil
}

// UnwrapPathErr drops the *fs.PathError around err (the caller names the
// path itself).
func UnwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// UnwrapOpErr drops the *net.OpError and *os.SyscallError around err.
func UnwrapOpErr(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	return err
}
