package session

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// lentPair returns a TCP session pair and a channel of each end after one
// round trip in which the client's Read waited, so its reader lent the
// read role (rxrole.go); with longLease it keeps it lent until asked.
// With hold it then starts a Read and waits until
// that Read holds the role, blocked in the transport. The waits are
// bounded by a guard, not timed.
func lentPair(t *testing.T, hold, longLease bool) (cli, srv *Session, c, s *Channel, readErr chan error) {
	// No heartbeats or challenges: nothing arrives unless the test sends
	// it, so only the mechanism under test can end a blocked Read.
	cli, srv = sessionPair(t, Config{HeartbeatInterval: time.Hour, IntegrityInterval: time.Hour})
	if longLease {
		// The role stays lent until someone asks for it back, on a
		// machine of any speed.
		cli.lendCheck.Store(int64(time.Hour))
	}
	var err error
	if c, err = cli.OpenChannel(-1); err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 64)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	if s, err = srv.AcceptChannel(t.Context()); err != nil {
		t.Fatal(err)
	}
	go func() {
		// Echo once, slowly enough that the client's Read waits and the
		// reader lends it the role.
		buf := make([]byte, 64)
		if _, err := io.ReadFull(s, buf); err == nil {
			time.Sleep(20 * time.Millisecond)
			s.Write(buf)
		}
	}()
	if _, err := io.ReadFull(c, msg); err != nil {
		t.Fatal(err)
	}
	readErr = make(chan error, 1)
	if !hold {
		return
	}
	go func() {
		_, err := c.Read(make([]byte, 64))
		readErr <- err
	}()
	guard := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		holding := c.rxHolding
		c.mu.Unlock()
		if holding {
			return
		}
		if time.Now().After(guard) {
			t.Fatal("the Read never took the read role")
		}
		time.Sleep(time.Millisecond)
	}
}

func waitErr(t *testing.T, ch chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("still blocked: the read role was not taken back or interrupted")
		return nil
	}
}

// TestLentRoleReadInterruptedByClose: a Read blocked in the transport on
// the session's behalf still ends at once when its channel is closed.
func TestLentRoleReadInterruptedByClose(t *testing.T) {
	cli, _, c, _, readErr := lentPair(t, true, true)
	c.Close()
	if err := waitErr(t, readErr); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v, want ErrClosed", err)
	}
	if err := cli.Err(); err != nil {
		t.Fatalf("the interruption ended the session: %v", err)
	}
}

// TestLentRoleReadHonoursDeadline: a read deadline set while the Read
// holds the role ends it with the deadline error; the session lives on
// and the stream stays in step (the next exchange works).
func TestLentRoleReadHonoursDeadline(t *testing.T) {
	cli, _, c, s, readErr := lentPair(t, true, true)
	c.SetReadDeadline(time.Now().Add(-time.Second))
	if err := waitErr(t, readErr); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read after a past deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	c.SetReadDeadline(time.Time{})
	if _, err := s.Write([]byte("after the kick")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("after the kick"))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "after the kick" {
		t.Fatalf("after the kick: %q, %v", buf, err)
	}
	if err := cli.Err(); err != nil {
		t.Fatalf("the kick ended the session: %v", err)
	}
}

// TestLentRoleGoesBack: with the role lent and no Read running, packets
// nobody waits for are still processed: the peer's session CLOSE ends the
// session, and a Write waiting for credit gets the peer's window update.
func TestLentRoleGoesBack(t *testing.T) {
	t.Run("CLOSE", func(t *testing.T) {
		// The role is lent and no Read runs: only the reader taking it
		// back can notice the CLOSE.
		cli, srv, _, _, _ := lentPair(t, false, false)
		srv.Close()
		select {
		case <-cli.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the peer's CLOSE was never read")
		}
	})
	t.Run("credit", func(t *testing.T) {
		// Only the Write can take the role back.
		_, _, c, s, _ := lentPair(t, false, true)
		// The client now writes three windows while only
		// the server reads: the credit comes back in ACKs that no Read
		// of the client fetches.
		done := make(chan error, 1)
		go func() {
			_, err := io.CopyN(io.Discard, s, 3*DefaultWindow)
			done <- err
		}()
		wrote := make(chan error, 1)
		go func() {
			_, err := c.Write(make([]byte, 3*DefaultWindow))
			wrote <- err
		}()
		if err := waitErr(t, wrote); err != nil {
			t.Fatal(err)
		}
		if err := waitErr(t, done); err != nil {
			t.Fatal(err)
		}
	})
}
