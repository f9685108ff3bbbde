package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/seal"
	"github.com/pool-go/pool/internal/session"
	"github.com/pool-go/pool/internal/wire"
)

// ioChunk is what each Write and Read of the bulk transfers moves.
const ioChunk = 256 << 10

func runBulk(ctx context.Context, o *Options, p progress) (*BulkResult, error) {
	r := &BulkResult{SizeBytes: o.Size}
	var err error
	step := func(name string, f func() (float64, error)) float64 {
		if err != nil {
			return 0
		}
		var v float64
		v, err = f()
		if err == nil {
			p.printf("%-34s %8.0f MB/s", name, v)
		} else {
			err = fmt.Errorf("%s: %w", name, err)
		}
		return v
	}
	r.CeilingMBps = step("ceiling (seal, 1 core)", func() (float64, error) {
		mbps, openMBps, n := ceiling(o.Duration)
		r.CeilingOpenMBps, r.CeilingPacket = openMBps, n
		return mbps, nil
	})
	r.TCPMBps = step("plain TCP", func() (float64, error) { return bulkTCP(ctx, o, p) })
	r.TLS13MBps = step("crypto/tls 1.3", func() (float64, error) {
		v, suite, _, err := bulkTLS(ctx, o, p, tls13Default)
		r.TLS13Suite = suite
		return v, err
	})
	r.TLS12ChaChaMBps = step("crypto/tls 1.2 ChaCha20-Poly1305", func() (float64, error) {
		v, _, cpu, err := bulkTLS(ctx, o, p, tls12ChaCha)
		r.TLS12CPUPerMB = cpu
		return v, err
	})
	r.PoolMBps = step("POOL 1 channel", func() (float64, error) {
		v, cpu, allocs, err := bulkPool(ctx, o, p, 1, 1)
		r.PoolCPUPerMB, r.PoolAllocsPerPkt = cpu, allocs
		return v, err
	})
	r.Pool8chMBps = step("POOL 8 channels", func() (float64, error) {
		v, _, _, err := bulkPool(ctx, o, p, 1, 8)
		return v, err
	})
	r.Pool8sessMBps = step("POOL 8 sessions", func() (float64, error) {
		v, _, _, err := bulkPool(ctx, o, p, 8, 1)
		return v, err
	})
	if err != nil {
		return nil, err
	}
	r.PoolOverTLS12 = ratio(r.PoolMBps, r.TLS12ChaChaMBps)
	r.PoolOverTLS13 = ratio(r.PoolMBps, r.TLS13MBps)
	r.PoolOverCeiling = ratio(r.PoolMBps, r.CeilingMBps)
	r.Pool8chOverPool = ratio(r.Pool8chMBps, r.PoolMBps)
	return r, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

// ceiling is the crypto cost of POOL per byte on one core: Seal (HMAC-SHA256
// over header and plaintext, then ChaCha20-Poly1305 in place) of packets
// with the largest DATA plaintext, as the session seals them, on the calling
// goroutine; and the same for Open. No I/O, no copies: nothing POOL does
// per byte can be cheaper.
func ceiling(d time.Duration) (sealMBps, openMBps float64, pktBytes int) {
	var k seal.DirectionKeys
	rand.Read(k.Enc[:])
	rand.Read(k.HMAC[:])
	sealer, opener := seal.NewProtector(&k), seal.NewProtector(&k)
	defer sealer.Close()
	defer opener.Close()
	n := session.MaxDataPlaintext
	buf := make([]byte, wire.HeaderLen+n+wire.TagLen)
	rand.Read(buf)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pkt := buf[:wire.HeaderLen+n]
	setHdr := func(seq uint64) {
		buf[0] = byte(wire.Version1<<4) | byte(wire.TypeData)
		binary.BigEndian.PutUint64(buf[4:12], seq)
		binary.BigEndian.PutUint16(buf[44:46], uint16(n+wire.TagLen))
	}
	var bytes int64
	start := time.Now()
	seq := uint64(0)
	for time.Since(start) < d || seq < 4 {
		for range 16 {
			setHdr(seq)
			sealer.Seal(pkt)
			seq++
			bytes += int64(n)
		}
	}
	sealMBps = mbps(bytes, time.Since(start))
	// Open needs a valid packet each time: seal one, then open a copy.
	setHdr(seq)
	sealed := append([]byte(nil), sealer.Seal(pkt)...)
	work := make([]byte, len(sealed))
	bytes = 0
	start = time.Now()
	for i := 0; time.Since(start) < d || i < 4; i++ {
		for range 16 {
			copy(work, sealed)
			if _, err := opener.Open(work); err != nil {
				panic("bench: open of a sealed packet failed: " + err.Error())
			}
			bytes += int64(n)
		}
	}
	openMBps = mbps(bytes, time.Since(start))
	return sealMBps, openMBps, len(sealed)
}

// payload is the data every bulk sender writes (random, so nothing in the
// path can profit from repetition).
var payload = func() []byte {
	b := make([]byte, ioChunk)
	rand.Read(b)
	return b
}()

// send writes n bytes of payload to w.
func send(w io.Writer, n int64, sent *atomic.Int64) error {
	for n > 0 {
		k := min(n, int64(len(payload)))
		m, err := w.Write(payload[:k])
		sent.Add(int64(m))
		if err != nil {
			return err
		}
		n -= int64(m)
	}
	return nil
}

// drain reads r to EOF and checks that want bytes came.
func drain(r io.Reader, want int64) error {
	buf := make([]byte, ioChunk)
	var got int64
	for {
		n, err := r.Read(buf)
		got += int64(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if got != want {
		return fmt.Errorf("received %d bytes, sent %d", got, want)
	}
	return nil
}

// timed runs one transfer and reports its throughput and CPU per MB of the
// whole process (both ends), with progress every 2 s.
func timed(p progress, total int64, sent *atomic.Int64, run func() error) (float64, float64, error) {
	stop := p.ticker(func() string {
		return fmt.Sprintf("  %s of %s", sizeText(sent.Load()), sizeText(total))
	})
	cpu0 := processCPU()
	start := time.Now()
	err := run()
	el := time.Since(start)
	cpu := processCPU() - cpu0
	stop()
	if err != nil {
		return 0, 0, err
	}
	return mbps(total, el), float64(cpu.Milliseconds()) / (float64(total) / 1e6), nil
}

func bulkTCP(ctx context.Context, o *Options, p progress) (float64, error) {
	c, s, err := tcpPair(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	defer s.Close()
	defer context.AfterFunc(ctx, func() { c.Close() })() // Ctrl-C ends the transfer
	var sent atomic.Int64
	v, _, err := timed(p, o.Size, &sent, func() error {
		errc := make(chan error, 1)
		go func() { errc <- drain(s, o.Size) }()
		err := send(c, o.Size, &sent)
		if err == nil {
			err = c.CloseWrite()
		}
		return errors.Join(err, <-errc)
	})
	return v, err
}

func bulkTLS(ctx context.Context, o *Options, p progress, kind tlsKind) (float64, string, float64, error) {
	c, s, err := tlsPair(ctx, kind)
	if err != nil {
		return 0, "", 0, err
	}
	defer c.Close()
	defer s.Close()
	defer context.AfterFunc(ctx, func() { c.Close() })()
	var sent atomic.Int64
	v, cpu, err := timed(p, o.Size, &sent, func() error {
		errc := make(chan error, 1)
		go func() { errc <- drain(s, o.Size) }()
		err := send(c, o.Size, &sent)
		if err == nil {
			err = c.CloseWrite()
		}
		return errors.Join(err, <-errc)
	})
	return v, suiteName(c), cpu, err
}

// bulkPool moves o.Size bytes split evenly over sessions × channels and
// returns MB/s, process CPU ms per MB, and heap allocations per packet.
func bulkPool(ctx context.Context, o *Options, p progress, sessions, channels int) (float64, float64, float64, error) {
	n, err := newPoolNet(nil)
	if err != nil {
		return 0, 0, 0, err
	}
	defer n.Close()
	type pair struct{ cli, srv *pool.Session }
	pairs := make([]pair, 0, sessions)
	defer func() {
		for _, pr := range pairs {
			pr.cli.Close()
			pr.srv.Close()
		}
	}()
	for range sessions {
		c, s, err := n.pair(ctx)
		if err != nil {
			return 0, 0, 0, err
		}
		pairs = append(pairs, pair{c, s})
	}
	defer context.AfterFunc(ctx, func() {
		for _, pr := range pairs {
			pr.cli.CloseWithError(pool.CodeApplication, "bench interrupted")
		}
	})()
	streams := sessions * channels
	per := o.Size / int64(streams)
	total := per * int64(streams)
	var sent atomic.Int64
	var m0, m1 runtime.MemStats
	var pkts0 uint64
	for _, pr := range pairs {
		st := pr.cli.Stats()
		pkts0 += st.PacketsSent + pr.srv.Stats().PacketsSent
	}
	runtime.ReadMemStats(&m0)
	v, cpu, err := timed(p, total, &sent, func() error {
		var wg sync.WaitGroup
		errs := make(chan error, 2*streams)
		for _, pr := range pairs {
			for range channels {
				ch, err := pr.cli.OpenChannel(-1)
				if err != nil {
					return err
				}
				wg.Add(2)
				go func() {
					defer wg.Done()
					err := send(ch, per, &sent)
					if err == nil {
						err = ch.CloseWrite()
					}
					errs <- err
				}()
				go func() {
					defer wg.Done()
					rc, err := pr.srv.AcceptChannel(ctx)
					if err == nil {
						err = drain(rc, per)
						rc.Close()
					}
					errs <- err
				}()
			}
		}
		wg.Wait()
		close(errs)
		var all error
		for e := range errs {
			all = errors.Join(all, e)
		}
		return all
	})
	runtime.ReadMemStats(&m1)
	var pkts1 uint64
	for _, pr := range pairs {
		pkts1 += pr.cli.Stats().PacketsSent + pr.srv.Stats().PacketsSent
	}
	allocs := 0.0
	if d := pkts1 - pkts0; d > 0 {
		allocs = float64(m1.Mallocs-m0.Mallocs) / float64(d)
	}
	return v, cpu, allocs, err
}
