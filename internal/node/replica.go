package node

// A peer's journal replica (PROTOCOL.md §7.16): the hashes of a
// contiguous run of the peer's journal entries, at most replicaCap, as
// the peer sent them in JOURNAL HASHES. Entry hashes chain, so a rewrite
// of any entry changes the hash of every later one: whatever the peer
// shows later for a seq the replica holds must match. A run the peer
// shows that contradicts it, or a journal that became shorter, is a
// divergence. The replica is kept on disk, beside the node's own
// journal, so a restart of either node forgets nothing.

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/wire"
)

const (
	// replicaCap bounds a peer's replica: the hashes of its last 4096
	// entries (128 KiB).
	replicaCap = 4096
	// maxReplicas bounds how many peers' replicas a node keeps; the least
	// recently updated is dropped first (allow_any admits any key).
	maxReplicas = 256
	// replicaMagic starts a replica file: "POOLRPL1" ‖ BE64(first) ‖
	// prev[32] ‖ the hashes, 32 bytes each.
	replicaMagic     = "POOLRPL1"
	replicaHeaderLen = len(replicaMagic) + 8 + 32
)

// replica is the run of entry hashes first … first+len(hashes)−1 of one
// peer's journal; prev is the hash of entry first−1.
type replica struct {
	first  uint64
	prev   [32]byte
	hashes [][32]byte
	tick   uint64 // witness.clock at the last update (eviction order)
	dirty  bool   // changed since written to disk
}

// Divergence kinds.
const (
	divergenceRewritten = "rewritten" // a held entry's hash is shown differently
	divergenceTruncated = "truncated" // the journal shown ends before entries shown earlier
)

// divergence is what a peer showed against what its replica held: at
// heldSeq the replica has held; at seenSeq the peer now shows seen.
type divergence struct {
	kind             string
	heldSeq, seenSeq uint64
	held, seen       [32]byte
}

func (r *replica) empty() bool  { return len(r.hashes) == 0 }
func (r *replica) last() uint64 { return r.first + uint64(len(r.hashes)) - 1 }

// hashAt returns the hash the replica holds for entry seq: one of the run,
// or prev for entry first−1.
func (r *replica) hashAt(seq uint64) ([32]byte, bool) {
	switch {
	case r.empty():
		return [32]byte{}, false
	case seq+1 == r.first && seq > 0:
		return r.prev, true
	case seq >= r.first && seq <= r.last():
		return r.hashes[seq-r.first], true
	}
	return [32]byte{}, false
}

// adopt makes h the replica (a first run, a gap, or after a divergence,
// so that one rewrite is one alert).
func (r *replica) adopt(h *wire.JournalHashes) {
	r.first, r.prev = h.First, h.Prev
	r.hashes = slices.Clone(h.Hashes)
	r.trim()
	r.dirty = true
}

func (r *replica) trim() {
	if k := len(r.hashes) - replicaCap; k > 0 {
		r.prev = r.hashes[k-1]
		r.hashes = slices.Clone(r.hashes[k:])
		r.first += uint64(k)
	}
}

// observeHashes checks a run the peer sent against the replica and adds
// it. sole says the session it came on is the only one with this peer:
// only then does a START run that ends early mean a shorter journal (two
// sessions' START runs may arrive in either order).
func (r *replica) observeHashes(h *wire.JournalHashes, sole bool) (divergence, bool) {
	if r.empty() {
		r.adopt(h)
		return divergence{}, false
	}
	end := h.First + uint64(len(h.Hashes)) - 1
	check := func(seq uint64, seen [32]byte) (divergence, bool) {
		held, ok := r.hashAt(seq)
		if !ok || held == seen {
			return divergence{}, false
		}
		return divergence{kind: divergenceRewritten, heldSeq: seq, seenSeq: seq, held: held, seen: seen}, true
	}
	if h.First > 1 {
		if d, bad := check(h.First-1, h.Prev); bad {
			r.adopt(h)
			return d, true
		}
	}
	for i := range h.Hashes {
		if d, bad := check(h.First+uint64(i), h.Hashes[i]); bad {
			r.adopt(h)
			return d, true
		}
	}
	if h.Start && sole && end < r.last() {
		d := divergence{kind: divergenceTruncated, heldSeq: r.last(), seenSeq: end,
			held: r.hashes[len(r.hashes)-1], seen: h.Hashes[len(h.Hashes)-1]}
		r.adopt(h)
		return d, true
	}
	switch {
	case h.First > r.last()+1:
		r.adopt(h) // a gap: the run starts again here
	case end > r.last():
		r.hashes = append(r.hashes, h.Hashes[r.last()+1-h.First:]...)
		r.trim()
		r.dirty = true
	}
	return divergence{}, false
}

// observeCheckpoint checks a CHECKPOINT (seq, head) against the replica.
// A contradiction empties the replica: the next run starts it afresh.
func (r *replica) observeCheckpoint(c wire.JournalCheckpoint) (divergence, bool) {
	held, ok := r.hashAt(c.Seq)
	if !ok || held == c.Head {
		return divergence{}, false
	}
	r.hashes, r.dirty = nil, true
	return divergence{kind: divergenceRewritten, heldSeq: c.Seq, seenSeq: c.Seq, held: held, seen: c.Head}, true
}

// replicaFile names peer's replica file in dir.
func replicaFile(dir string, peer pool.PublicKey) string {
	return filepath.Join(dir, hex.EncodeToString(peer[:])+".replica")
}

func (r *replica) marshal() []byte {
	b := make([]byte, 0, replicaHeaderLen+32*len(r.hashes))
	b = append(b, replicaMagic...)
	b = binary.BigEndian.AppendUint64(b, r.first)
	b = append(b, r.prev[:]...)
	for i := range r.hashes {
		b = append(b, r.hashes[i][:]...)
	}
	return b
}

func parseReplica(b []byte) (*replica, error) {
	switch {
	case len(b) < replicaHeaderLen || !bytes.Equal(b[:len(replicaMagic)], []byte(replicaMagic)):
		return nil, errors.New("not a replica file")
	case (len(b)-replicaHeaderLen)%32 != 0 || (len(b)-replicaHeaderLen)/32 > replicaCap:
		return nil, fmt.Errorf("replica of %d bytes: not a whole number of hashes, or more than %d", len(b), replicaCap)
	}
	r := &replica{first: binary.BigEndian.Uint64(b[8:16]), prev: [32]byte(b[16:48])}
	for p := b[replicaHeaderLen:]; len(p) > 0; p = p[32:] {
		r.hashes = append(r.hashes, [32]byte(p[:32]))
	}
	if r.first == 0 && len(r.hashes) > 0 {
		return nil, errors.New("replica starts at entry 0")
	}
	return r, nil
}

// loadReplicas reads the replica files in dir (missing: none). A file
// that cannot be read is reported and skipped; the peer's next run
// replaces it.
func loadReplicas(dir string) (map[pool.PublicKey]*replica, []error) {
	out := map[pool.PublicKey]*replica{}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	} else if err != nil {
		return out, []error{err}
	}
	var errs []error
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".replica")
		if !ok {
			continue
		}
		key, err := hex.DecodeString(name)
		if err != nil || len(key) != 32 {
			continue
		}
		path := filepath.Join(dir, e.Name())
		fi, err := e.Info()
		if err != nil || fi.Size() > int64(replicaHeaderLen+32*replicaCap) {
			errs = append(errs, fmt.Errorf("%s: unreadable or too large", path))
			continue
		}
		b, err := os.ReadFile(path)
		if err == nil {
			var r *replica
			if r, err = parseReplica(b); err == nil {
				out[pool.PublicKey(key)] = r
				continue
			}
		}
		errs = append(errs, fmt.Errorf("%s: %v", path, err))
	}
	return out, errs
}

// writeReplica replaces peer's replica file atomically (a crash leaves
// the old file or the new one).
func writeReplica(dir string, peer pool.PublicKey, r *replica) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path := replicaFile(dir, peer)
	tmp, err := os.CreateTemp(dir, ".replica-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(r.marshal())
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
