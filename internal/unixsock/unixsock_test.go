package unixsock

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestListenModeStaleInUse: the socket has the asked mode; a stale socket is
// replaced (and reported), a live one or a regular file is not.
func TestListenModeStaleInUse(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o600, 0o660} {
		path := filepath.Join(dir, mode.String()+".sock")
		ln, err := Listen(path, mode, nil)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != mode {
			t.Errorf("mode %v, want %v", got, mode)
		}
		if _, err := Listen(path, mode, nil); !errors.Is(err, ErrInUse) {
			t.Errorf("over a live socket: %v, want ErrInUse", err)
		}
		ln.Close()
	}

	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	removed := false
	ln, err = Listen(stale, 0o600, func() { removed = true })
	if err != nil || !removed {
		t.Fatalf("over a stale socket: err %v, reported %v", err, removed)
	}
	ln.Close()

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file, 0o600, nil); !errors.Is(err, ErrNotSocket) {
		t.Errorf("over a regular file: %v, want ErrNotSocket", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "x" {
		t.Error("the regular file was replaced")
	}
}

// TestConns: Add refuses past Max; CloseAll ends every tracked connection
// and refuses later ones.
func TestConns(t *testing.T) {
	s := Conns{Max: 1}
	a, b := net.Pipe()
	defer b.Close()
	if err := s.Add(a); err != nil {
		t.Fatalf("Add before CloseAll: %v", err)
	}
	e, f := net.Pipe()
	defer e.Close()
	defer f.Close()
	if err := s.Add(e); !errors.Is(err, ErrBusy) {
		t.Fatalf("Add past Max: %v, want ErrBusy", err)
	}
	s.CloseAll()
	if _, err := a.Write([]byte{1}); err == nil {
		t.Fatal("a tracked connection survived CloseAll")
	}
	c, d := net.Pipe()
	defer c.Close()
	defer d.Close()
	if err := s.Add(c); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after CloseAll: %v, want ErrClosed", err)
	}
}
