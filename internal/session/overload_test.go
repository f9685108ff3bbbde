package session

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pool-go/pool/internal/wire"
)

// TestOverloadPausesSender: on OVERLOAD the peer holds its DATA for the
// pause, its writes block rather than fail, and the data arrives after.
func TestOverloadPausesSender(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv := pipePair(t, Config{})
		defer closeBoth(cli, srv)
		synctest.Wait() // the layer signal: each side's first telemetry
		srv.mu.Lock()
		srv.queueNoticeLocked(wire.OverloadPause(time.Second))
		srv.mu.Unlock()
		synctest.Wait()
		if o := cli.Overload(); !o.Paused || o.Received != 1 {
			t.Fatalf("client after OVERLOAD: %+v", o)
		}
		ch, _ := cli.OpenChannel(0)
		if _, err := ch.Write([]byte("held")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(900 * time.Millisecond)
		synctest.Wait()
		if n := srv.Stats().BytesReceived; n != 0 {
			t.Fatalf("%d bytes of DATA arrived during the pause", n)
		}
		if cli.Err() != nil || srv.Err() != nil {
			t.Fatal("the pause ended the session")
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		sch, err := srv.AcceptChannel(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 8)
		if n, _ := sch.Read(buf); string(buf[:n]) != "held" {
			t.Fatalf("after the pause: %q", buf[:n])
		}
	})
}

// TestOverloadHighWater: a receiver whose unread data passes the mark
// tells the sender to pause, and resumes it once drained; nothing the
// sender's Write accepted is lost.
func TestOverloadHighWater(t *testing.T) {
	cli, srv := sessionPair(t, Config{OverloadHighWater: 512 << 10})
	const nch, size = 4, 1 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 13)
	}
	want := sha256.Sum256(data)
	var wg sync.WaitGroup
	for i := 0; i < nch; i++ {
		ch, err := cli.OpenChannel(-1)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch.Write(data)
			ch.CloseWrite()
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for cli.Overload().Received == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no OVERLOAD after 10 s; server %+v", srv.Overload())
		}
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < nch; i++ {
		sch, err := srv.AcceptChannel(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, sch); err != nil {
			t.Fatal(err)
		}
		if [32]byte(h.Sum(nil)) != want {
			t.Fatalf("channel %d: data differs", sch.ID())
		}
	}
	wg.Wait()
	if o := srv.Overload(); o.Sent < 2 {
		t.Errorf("server sent %d notices; want an OVERLOAD and a resume", o.Sent)
	}
}

// TestSlowReaderBlocksWriter: a peer that does not read makes Write block
// once the window and the send queue are full; memory stays flat, and
// everything arrives once the reader reads.
func TestSlowReaderBlocksWriter(t *testing.T) {
	cli, srv := sessionPair(t, Config{})
	ch, _ := cli.OpenChannel(0)
	const total = 64 << 20
	var accepted atomic.Int64
	done := make(chan error, 1)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	go func() {
		buf := make([]byte, 256<<10)
		for sent := 0; sent < total; sent += len(buf) {
			n, err := ch.Write(buf)
			accepted.Add(int64(n))
			if err != nil {
				done <- err
				return
			}
		}
		done <- ch.CloseWrite()
	}()
	time.Sleep(time.Second)
	got := accepted.Load()
	// The peer's window (1 MiB) plus the session queue (4 MiB), plus one
	// write in progress.
	if limit := int64(DefaultWindow + maxQueuedBytes + 256<<10); got > limit {
		t.Fatalf("Write accepted %d bytes from a peer that reads nothing; bound %d", got, limit)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grow := int64(after.HeapInuse) - int64(before.HeapInuse); grow > 32<<20 {
		t.Fatalf("heap grew by %d bytes while the writer was blocked", grow)
	}
	select {
	case err := <-done:
		t.Fatalf("writer finished (%v) although nobody read", err)
	default:
	}
	sch, err := srv.AcceptChannel(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, sch)
	if err != nil || n != total {
		t.Fatalf("read %d of %d bytes: %v", n, total, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestOverloadNeverDeadlocks: a receiver whose application reads one
// channel at a time while the others fill its buffers must not hold the
// sender for good: the data its blocked Read waits for may be what the
// pause holds. A waiting Read lifts the OVERLOAD, so everything arrives.
func TestOverloadNeverDeadlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv := pipePair(t, Config{OverloadHighWater: 100 << 10})
		defer closeBoth(cli, srv)
		synctest.Wait()
		const nch, size = 4, 1 << 20
		for i := 0; i < nch; i++ {
			ch, _ := cli.OpenChannel(-1)
			go func() {
				ch.Write(make([]byte, size))
				ch.CloseWrite()
			}()
		}
		synctest.Wait()
		if cli.Overload().Received == 0 {
			t.Fatal("no OVERLOAD although 4 MiB went unread")
		}
		done := make(chan error, 1)
		go func() {
			for i := 0; i < nch; i++ {
				sch, err := srv.AcceptChannel(context.Background())
				if err != nil {
					done <- err
					return
				}
				if n, err := io.Copy(io.Discard, sch); err != nil || n != size {
					done <- fmt.Errorf("channel %d: %d bytes, %v", sch.ID(), n, err)
					return
				}
			}
			done <- nil
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(time.Minute): // simulated: the pause repeats forever
			t.Fatal("the reader is still waiting after a minute: OVERLOAD holds the data it needs")
		}
	})
}
