package shimd

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

var relayBufs = sync.Pool{New: func() any { b := make([]byte, relayBuffer); return &b }}

// relay copies both ways until both directions ended. An EOF is passed on
// as a half-close (CloseWrite) where the other side supports it, so
// request/response protocols that shut down their sending side keep
// working; an error in either direction closes both. Each direction holds
// one fixed buffer: a slow reader stalls the writer, nothing queues here.
func (s *Server) relay(app *net.UnixConn, remote net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.pipe(remote, app, &s.c.bytesOut)
	}()
	go func() {
		defer wg.Done()
		s.pipe(app, remote, &s.c.bytesIn)
	}()
	wg.Wait()
}

type closeWriter interface{ CloseWrite() error }

// pipe copies from src to dst; at EOF it half-closes dst; on an error it
// closes both, which ends the other direction too.
func (s *Server) pipe(dst, src net.Conn, n *atomic.Uint64) {
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	buf := *bp
	for {
		k, rerr := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				dst.Close()
				src.Close()
				return
			}
			n.Add(uint64(k))
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				if cw, ok := dst.(closeWriter); ok && cw.CloseWrite() == nil {
					return
				}
			}
			dst.Close()
			src.Close()
			return
		}
	}
}
