package selftest

import (
	"context"
	"io"
	"sync"
	"time"
)

// DefaultEvery is the period of a Monitor given none. A round of KATs costs
// well under a millisecond, so a minute is far from any load concern; it
// bounds how long tampering of a primitive can go unnoticed.
const DefaultEvery = time.Minute

// probeLen is how many bytes a Monitor draws through its Source each round,
// so that an idle node still exercises the health tests (SP 800-90B §4.5
// allows on-demand testing; §4.3 sizes start-up tests at 1024 samples).
const probeLen = 1024

// Monitor runs the known-answer tests at start and every period, watches a
// Source's health tests, and latches the result: after the first failure
// the node stays unhealthy until restart, as draft §17.3 requires of a node
// that "marks itself compromised ... and refuses new sessions". Session
// admission should consult Healthy; onFail is the hook for alerting through
// a channel outside the potentially compromised code path.
//
// Healthy is false until the first round has passed, so a node that checks
// it never admits a session before its primitives were verified.
type Monitor struct {
	every  time.Duration
	src    *Source
	onFail func(error)

	round sync.Mutex // serialises rounds (Check may race the loop)

	mu      sync.Mutex
	runs    uint64
	healthy bool
	lastErr error // the first failure; never cleared
	started bool
	done    chan struct{}
}

// NewMonitor returns a Monitor that runs every period (DefaultEvery if ≤ 0),
// also watches src if non-nil, and calls onFail (if non-nil) once, with
// the first failure, from the goroutine that found it.
func NewMonitor(every time.Duration, src *Source, onFail func(error)) *Monitor {
	if every <= 0 {
		every = DefaultEvery
	}
	return &Monitor{every: every, src: src, onFail: onFail, done: make(chan struct{})}
}

// Start is the one-call form without a Source: NewMonitor(every, nil,
// onFail) followed by Monitor.Start. The first round has run when it
// returns; its outcome is in Healthy and LastErr.
func Start(ctx context.Context, every time.Duration, onFail func(error)) *Monitor {
	m := NewMonitor(every, nil, onFail)
	m.Start(ctx)
	return m
}

// Start runs one round synchronously, so Healthy is meaningful as soon as
// it returns, and then, unless that round failed, a goroutine that runs a
// round every period and reacts at once when the Source fails. The
// goroutine ends when ctx is done or at the first failure; Done is closed
// then. Start returns the first round's error. Calling it twice panics.
func (m *Monitor) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		panic("selftest: Monitor started twice")
	}
	m.started = true
	m.mu.Unlock()

	if err := m.Check(); err != nil {
		close(m.done)
		return err
	}
	go m.loop(ctx)
	return nil
}

func (m *Monitor) loop(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(m.every)
	defer t.Stop()
	var srcFailed <-chan struct{}
	if m.src != nil {
		srcFailed = m.src.Failed()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-srcFailed:
			srcFailed = nil // the round below records it
		}
		if m.Check() != nil {
			return
		}
	}
}

// Check runs one round now: the KATs, then (with a Source) a probe read
// through the health tests and the Source's latched state. It records the
// outcome and returns the round's error. Once the Monitor has failed it
// stays failed: Check then returns the first failure without re-running.
// OnFail runs after the round's locks are released, so it may call any
// method of the Monitor.
func (m *Monitor) Check() error {
	first, err := m.check()
	if first && m.onFail != nil {
		m.onFail(err)
	}
	return err
}

func (m *Monitor) check() (first bool, err error) {
	m.round.Lock()
	defer m.round.Unlock()
	if err := m.LastErr(); err != nil {
		return false, err
	}
	err = Run()
	if err == nil && m.src != nil {
		var buf [probeLen]byte
		if _, rerr := io.ReadFull(m.src, buf[:]); rerr != nil {
			err = rerr
		} else if serr := m.src.Err(); serr != nil {
			err = serr
		}
		clear(buf[:])
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	m.runs++
	if err != nil {
		m.healthy, m.lastErr = false, err
		return true, err
	}
	m.healthy = true
	return false, nil
}

// Healthy reports whether at least one round ran and none has failed.
func (m *Monitor) Healthy() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.healthy
}

// LastErr returns the failure that made the Monitor unhealthy, or nil.
func (m *Monitor) LastErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastErr
}

// Runs returns the number of rounds completed.
func (m *Monitor) Runs() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runs
}

// Done is closed when the monitoring goroutine has ended (ctx done or a
// failure), or when Start's first round failed.
func (m *Monitor) Done() <-chan struct{} { return m.done }
