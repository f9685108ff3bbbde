package journal

import (
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Aggregation (DESIGN §2.7): Note merges identical events — same type,
// same config versions, same detail — seen within one window into a single
// entry whose Count says how many there were, so that a flood of errors
// (forged packets, handshake spam) costs the disk one entry per distinct
// event per window, not one per event.
//
// A bucket opens at the first event of its kind and closes one window
// later; the background flusher (which looks every window/8) then appends
// one entry with First = the first event's time, Time = the write time and
// Count = the number of events. Close and Flush write every open bucket.
// Durability of aggregated counts is therefore "at window close": events
// noted in a window that has not closed are lost by a crash.
//
// Memory is bounded: at most MaxAggregateKeys buckets are open; events of
// a new kind beyond that are counted in one overflow bucket per type whose
// detail is {"aggregated": "overflow"}.

type bucket struct {
	e     Entry
	first time.Time
	count uint64
}

type aggregator struct {
	j       *Journal
	window  time.Duration
	maxKeys int

	mu       sync.Mutex
	buckets  map[string]*bucket
	overflow map[Type]*bucket
	stopped  bool
	inflight uint64 // counts taken out of buckets, being written

	quit chan struct{}
	done chan struct{}
}

func newAggregator(j *Journal, window time.Duration, maxKeys int) *aggregator {
	a := &aggregator{
		j: j, window: window, maxKeys: maxKeys,
		buckets:  make(map[string]*bucket),
		overflow: make(map[Type]*bucket),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go a.run()
	return a
}

func (a *aggregator) run() {
	defer close(a.done)
	tick := max(a.window/8, time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-a.quit:
			return
		case <-t.C:
			a.flush(a.j.now(), false)
		}
	}
}

// Note records e (its Type, Detail and config versions) through
// aggregation: it never touches the disk and never blocks on it. It counts
// as e.Count events (1 when zero), for callers that batch. It fails only
// for an invalid entry or a closed journal. Without aggregation
// (Options.AggregateWindow < 0) it is Append.
func (j *Journal) Note(e Entry) error {
	n := max(e.Count, 1)
	if j.agg == nil {
		_, err := j.append(e, time.Time{}, n)
		return err
	}
	if e.Type == 0 {
		return errors.New("journal: entry type 0")
	}
	key := make([]byte, 0, 64)
	key = binary.BigEndian.AppendUint16(key, uint16(e.Type))
	key = binary.BigEndian.AppendUint64(key, e.ConfigBefore)
	key = binary.BigEndian.AppendUint64(key, e.ConfigAfter)
	key, err := appendDetail(key, e.Detail)
	if err != nil {
		return err
	}
	now := j.now()
	a := j.agg
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return ErrClosed
	}
	if b := a.buckets[string(key)]; b != nil {
		b.count += n
		return nil
	}
	if len(a.buckets) >= a.maxKeys {
		b := a.overflow[e.Type]
		if b == nil {
			b = &bucket{e: Entry{Type: e.Type, Detail: map[string]string{"aggregated": "overflow"}}, first: now}
			a.overflow[e.Type] = b
		}
		b.count += n
		return nil
	}
	e.Detail = cloneDetail(e.Detail)
	a.buckets[string(key)] = &bucket{e: e, first: now, count: n}
	return nil
}

// Pending is the number of events noted but not yet written.
func (j *Journal) Pending() uint64 {
	if j.agg == nil {
		return 0
	}
	a := j.agg
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.inflight
	for _, b := range a.buckets {
		n += b.count
	}
	for _, b := range a.overflow {
		n += b.count
	}
	return n
}

func cloneDetail(d map[string]string) map[string]string {
	if d == nil {
		return nil
	}
	c := make(map[string]string, len(d))
	for k, v := range d {
		c[k] = v
	}
	return c
}

// flush appends the buckets whose window has closed at now (all of them
// if all), oldest first. A bucket that cannot be written is logged with
// its count, never silently dropped; the last such error is returned.
func (a *aggregator) flush(now time.Time, all bool) error {
	a.mu.Lock()
	var due []*bucket
	for k, b := range a.buckets {
		if all || now.Sub(b.first) >= a.window {
			due = append(due, b)
			delete(a.buckets, k)
		}
	}
	for t, b := range a.overflow {
		if all || now.Sub(b.first) >= a.window {
			due = append(due, b)
			delete(a.overflow, t)
		}
	}
	for _, b := range due {
		a.inflight += b.count
	}
	a.mu.Unlock()
	slices.SortFunc(due, func(x, y *bucket) int { return x.first.Compare(y.first) })
	var last error
	for _, b := range due {
		if _, err := a.j.append(b.e, b.first, b.count); err != nil {
			a.j.log.Error("journal: cannot write aggregated entry",
				"type", b.e.Type.String(), "count", strconv.FormatUint(b.count, 10), "err", err)
			last = err
		}
		a.mu.Lock()
		a.inflight -= b.count
		a.mu.Unlock()
	}
	return last
}

func (a *aggregator) stop() error {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return nil
	}
	a.stopped = true
	a.mu.Unlock()
	close(a.quit)
	<-a.done
	return a.flush(time.Time{}, true)
}
