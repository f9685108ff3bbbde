package handshake

// DefaultReplayCacheMax bounds accepted-RESPONSE records. At the cap the
// server fails closed: new RESPONSEs are dropped and the difficulty rises;
// no live entry is ever evicted, since eviction would reopen replay
// (handshake.md §1.1 P1.4).
const DefaultReplayCacheMax = 1 << 16

// replayEntry is one spent cookie. accept holds the byte-identical ACCEPT
// for a retransmitted RESPONSE (raw IP) once the session exists.
type replayEntry struct {
	respHash [32]byte
	accept   []byte
}

// replayCache is keyed by SID (= the cookie) and bucketed by secret slot: a
// bucket is dropped whole when its slot's secret is replaced, because no
// cookie of that secret can verify any more. Memory is therefore bounded by
// the accepted-RESPONSE rate times the cookie lifetime, and by max.
type replayCache struct {
	max    int
	n      int
	epoch  [slots]int64
	bucket [slots]map[[16]byte]*replayEntry
}

func newReplayCache(max int) *replayCache {
	c := &replayCache{max: max}
	for i := range c.epoch {
		c.epoch[i] = -1
	}
	return c
}

// sync drops buckets whose slot now serves another epoch or none.
func (c *replayCache) sync(ring *secretRing) {
	for j := range c.bucket {
		if c.bucket[j] != nil && c.epoch[j] != ring.epoch[j] {
			c.n -= len(c.bucket[j])
			c.bucket[j] = nil
			c.epoch[j] = -1
		}
	}
}

// lookup returns the entry for sid in slot j, if any.
func (c *replayCache) lookup(j uint8, sid [16]byte) *replayEntry {
	if b := c.bucket[j]; b != nil {
		return b[sid]
	}
	return nil
}

// insert records sid as spent. It fails (returns nil) when the cache is full.
func (c *replayCache) insert(ring *secretRing, j uint8, sid [16]byte, respHash [32]byte) *replayEntry {
	if c.n >= c.max {
		return nil
	}
	if c.bucket[j] == nil {
		c.bucket[j] = make(map[[16]byte]*replayEntry)
		c.epoch[j] = ring.epoch[j]
	}
	e := &replayEntry{respHash: respHash}
	c.bucket[j][sid] = e
	c.n++
	return e
}

// Len reports the number of spent cookies held.
func (c *replayCache) Len() int { return c.n }
