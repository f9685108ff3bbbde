package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pool-go/pool"
)

// runMemory holds o.Sessions idle established sessions in this process and
// measures what each costs. Both ends of every loopback session live here,
// so Sessions/2 connections carry Sessions session objects; a session's
// ends are the same structure whatever the role, so heap per session object
// is what a server pays per client. Half as many connections also keeps the
// descriptors within the usual limit of 20,000.
func runMemory(ctx context.Context, o *Options, p progress) (*MemoryResult, error) {
	conns := (o.Sessions + 1) / 2
	if max := (fdLimit() - 256) / 2; conns > max {
		return nil, fmt.Errorf("%d sessions need %d descriptors; the limit is %d (raise ulimit -n or lower --sessions)",
			2*conns, 2*conns+256, fdLimit())
	}
	// All the clients dial from 127.0.0.1: the per-/24 INIT rate limit
	// (100/s) would make the setup take minutes, so the suite turns that
	// knob off (Config.InitRate < 0). Nothing else is changed.
	n, err := newPoolNet(func(c *pool.Config) { c.InitRate = -1 })
	if err != nil {
		return nil, err
	}
	defer n.Close()
	heap0, stack0, g0 := memNow()
	rss0 := rssBytes()

	var (
		mu      sync.Mutex
		clients []*pool.Session
		servers []*pool.Session
		made    atomic.Int64
	)
	defer func() {
		for _, s := range clients {
			s.Close()
		}
		for _, s := range servers {
			s.Close()
		}
	}()
	stop := p.ticker(func() string { return fmt.Sprintf("  %d of %d sessions established", 2*made.Load(), 2*conns) })
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	acceptErr := make(chan error, 1)
	go func() {
		for range conns {
			s, err := n.l.AcceptContext(ctx)
			if err != nil {
				acceptErr <- err
				return
			}
			mu.Lock()
			servers = append(servers, s)
			mu.Unlock()
		}
		acceptErr <- nil
	}()
	workers := 2 * runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	var next atomic.Int64
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(conns) {
				s, err := n.dial(ctx)
				if err != nil {
					errs <- err
					cancel()
					return
				}
				mu.Lock()
				clients = append(clients, s)
				mu.Unlock()
				made.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	err = <-errs
	if aerr := <-acceptErr; err == nil {
		err = aerr
	}
	stop()
	if err != nil {
		return nil, err
	}
	setup := time.Since(start)
	// Let the first telemetry exchange and its buffers settle: idle means
	// nothing in flight.
	time.Sleep(min(2*time.Second, max(200*time.Millisecond, o.Duration)))
	heap1, stack1, g1 := memNow()
	rss1 := rssBytes()
	k := float64(2 * conns)
	return &MemoryResult{Sessions: 2 * conns, Connections: conns,
		HeapPerSessionBytes:    float64(int64(heap1)-int64(heap0)) / k,
		StackPerSessionBytes:   float64(int64(stack1)-int64(stack0)) / k,
		RSSPerSessionBytes:     float64(rss1-rss0) / k,
		GoroutinesPerSession:   float64(g1-g0) / k,
		SetupSeconds:           setup.Seconds(),
		ServerInitRateDisabled: true, HeapPerSessionKiBTarget: 20}, nil
}

// memNow is the live heap and goroutine stacks after a full collection.
func memNow() (heap, stack uint64, goroutines int) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, m.StackInuse, runtime.NumGoroutine()
}
