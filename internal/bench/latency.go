package bench

import (
	"context"
	"errors"
	"fmt"
	"io"

	"slices"
	"time"
)

// msgSize is the request and the response of the latency suite.
const msgSize = 64

func runLatency(ctx context.Context, o *Options, p progress) (*LatencyResult, error) {
	r := &LatencyResult{Samples: o.RoundTrips}
	var err error
	r.TCPP50us, r.TCPP99us, err = latencyTCP(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("TCP: %w", err)
	}
	p.printf("plain TCP: p50 %.1f µs, p99 %.1f µs", r.TCPP50us, r.TCPP99us)
	r.TLSP50us, r.TLSP99us, err = latencyTLS(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	p.printf("crypto/tls 1.3: p50 %.1f µs, p99 %.1f µs", r.TLSP50us, r.TLSP99us)
	r.PoolP50us, r.PoolP99us, err = latencyPool(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("POOL: %w", err)
	}
	p.printf("POOL: p50 %.1f µs, p99 %.1f µs", r.PoolP50us, r.PoolP99us)
	r.PoolOverT = ratio(r.PoolP50us, r.TLSP50us)
	return r, nil
}

// echo answers every msgSize-byte request with itself until EOF.
func echo(rw io.ReadWriter) error {
	buf := make([]byte, msgSize)
	for {
		if _, err := io.ReadFull(rw, buf); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if _, err := rw.Write(buf); err != nil {
			return err
		}
	}
}

// pingPong times n request/response round trips (after a short warm-up)
// and returns the p50 and p99 in µs.
func pingPong(rw io.ReadWriter, n int) (p50, p99 float64, err error) {
	req, resp := make([]byte, msgSize), make([]byte, msgSize)
	samples := make([]time.Duration, 0, n)
	warm := min(n/10+1, 200)
	for i := 0; i < warm+n; i++ {
		req[0] = byte(i)
		t := time.Now()
		if _, err := rw.Write(req); err != nil {
			return 0, 0, err
		}
		if _, err := io.ReadFull(rw, resp); err != nil {
			return 0, 0, err
		}
		if i >= warm {
			samples = append(samples, time.Since(t))
		}
		if resp[0] != req[0] {
			return 0, 0, errors.New("echo returned another message")
		}
	}
	slices.Sort(samples)
	q := func(f float64) float64 { return us(samples[min(int(f*float64(len(samples))), len(samples)-1)]) }
	return q(0.50), q(0.99), nil
}

type closeWriter interface{ CloseWrite() error }

// measure runs pingPong on c against echo on s.
func measure(c, s io.ReadWriter, cw closeWriter, n int) (float64, float64, error) {
	errc := make(chan error, 1)
	go func() { errc <- echo(s) }()
	p50, p99, err := pingPong(c, n)
	cw.CloseWrite()
	return p50, p99, errors.Join(err, <-errc)
}

func latencyTCP(ctx context.Context, o *Options) (float64, float64, error) {
	c, s, err := tcpPair(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	defer s.Close()
	return measure(c, s, c, o.RoundTrips)
}

func latencyTLS(ctx context.Context, o *Options) (float64, float64, error) {
	c, s, err := tlsPair(ctx, tls13Default)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	defer s.Close()
	return measure(c, s, c, o.RoundTrips)
}

func latencyPool(ctx context.Context, o *Options) (float64, float64, error) {
	n, err := newPoolNet(nil)
	if err != nil {
		return 0, 0, err
	}
	defer n.Close()
	cli, srv, err := n.pair(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer cli.Close()
	defer srv.Close()
	ch, err := cli.OpenChannel(-1)
	if err != nil {
		return 0, 0, err
	}
	defer ch.Close()
	errc := make(chan error, 1)
	go func() {
		sc, err := srv.AcceptChannel(ctx)
		if err != nil {
			errc <- err
			return
		}
		defer sc.Close()
		errc <- echo(sc)
	}()
	p50, p99, err := pingPong(ch, o.RoundTrips)
	ch.CloseWrite()
	return p50, p99, errors.Join(err, <-errc)
}
