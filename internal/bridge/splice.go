package bridge

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/pool-go/pool"
)

// CodeAbort is the channel RST code the bridge sends when one side of a
// bridged connection fails (a TCP reset, a write that cannot complete): the
// first application code, so the peer sees APPLICATION(0x80) and a reason.
const CodeAbort = pool.CodeApplication

// copyBufSize is one copy step: the largest DATA payload over TCP is
// 65519 bytes, so 64 KiB keeps packets large without holding much per
// connection (two buffers per bridged connection, pooled).
const copyBufSize = 64 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// splice joins a TCP connection and a channel until both directions end.
// An end of stream is passed on as a half-close (TCP FIN ↔ channel FIN),
// so protocols that half-close keep working; a failure in either direction
// aborts both: the channel is reset and the TCP connection closed with a
// RST, so neither end waits on a connection that can no longer complete.
// Nothing is buffered beyond one copy step per direction: a slow reader
// stops the copy, which stops reading, which closes the sender's TCP
// window or runs the channel out of credit (backpressure end to end).
// It returns the bytes moved each way and the first failure.
func splice(tc *net.TCPConn, ch *pool.Channel, up, down *atomic.Uint64) (uint64, uint64, error) {
	var (
		once     sync.Once
		firstErr error
	)
	abort := func(err error) {
		once.Do(func() {
			firstErr = err
			reason := err.Error()
			if len(reason) > 120 {
				reason = reason[:120]
			}
			_ = ch.Reset(CodeAbort, "bridge: "+reason)
			_ = tc.SetLinger(0) // close with RST: the client must not take it for a clean end
			_ = tc.Close()
		})
	}
	var upN uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		var err error
		upN, err = copyCounted(ch, tc, up)
		if err != nil {
			abort(err)
			return
		}
		if err := ch.CloseWrite(); err != nil {
			abort(err)
		}
	}()
	downN, err := copyCounted(tc, ch, down)
	if err != nil {
		abort(err)
	} else if err := tc.CloseWrite(); err != nil {
		abort(err)
	}
	<-done
	if firstErr == nil {
		_ = tc.Close()
		_ = ch.Close()
	}
	return upN, downN, firstErr
}

// copyCounted copies src to dst until src's end of stream (nil error),
// adding every chunk to total as it goes, so live counters move during a
// long transfer.
func copyCounted(dst io.Writer, src io.Reader, total *atomic.Uint64) (uint64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var n uint64
	for {
		k, rerr := src.Read(buf)
		if k > 0 {
			w, werr := dst.Write(buf[:k])
			n += uint64(w)
			total.Add(uint64(w))
			if werr != nil {
				return n, werr
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return n, nil
			}
			return n, rerr
		}
	}
}
