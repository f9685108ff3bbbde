package journal

// The hashes of the last entries, kept in memory so that a node can send
// its peers runs of its chain (PROTOCOL.md §7.16, JOURNAL HASHES) without
// reading the file: a peer's replica is built from them.

// RecentHashes is how many of the last entries' hashes a Journal keeps
// (128 KiB).
const RecentHashes = 4096

type recentHashes struct {
	ring  [RecentHashes][32]byte
	start int      // index of entry first
	n     int      // hashes held
	first uint64   // sequence number of the oldest held
	prev  [32]byte // hash of entry first-1 (Genesis before entry 1)
}

func (r *recentHashes) push(seq uint64, hash, prev [32]byte) {
	if r.n == 0 {
		r.first, r.prev = seq, prev
	}
	if r.n < RecentHashes {
		r.ring[(r.start+r.n)%RecentHashes] = hash
		r.n++
		return
	}
	r.prev = r.ring[r.start]
	r.ring[r.start] = hash
	r.start = (r.start + 1) % RecentHashes
	r.first++
}

func (r *recentHashes) at(seq uint64) [32]byte {
	return r.ring[(r.start+int(seq-r.first))%RecentHashes]
}

// Hashes returns the hashes of up to limit durable entries from entry from
// on (or from the oldest still held, if from is older), with first the
// sequence number of hs[0] and prev the hash of entry first−1. It returns
// nothing when no durable entry at or after from is held.
func (j *Journal) Hashes(from uint64, limit int) (first uint64, prev [32]byte, hs [][32]byte) {
	durable, _ := j.Head()
	j.mu.Lock()
	defer j.mu.Unlock()
	r := &j.recent
	if r.n == 0 || limit <= 0 {
		return 0, prev, nil
	}
	last := min(r.first+uint64(r.n)-1, durable)
	from = max(from, r.first)
	if from > last {
		return 0, prev, nil
	}
	if from == r.first {
		prev = r.prev
	} else {
		prev = r.at(from - 1)
	}
	for s := from; s <= last && len(hs) < limit; s++ {
		hs = append(hs, r.at(s))
	}
	return from, prev, hs
}
