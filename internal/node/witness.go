package node

// The journal witness (PROTOCOL.md §7.16; issue 5): each node sends its
// peers CHECKPOINTs of its change-journal chain head, and keeps, per peer
// identity key, a bounded in-memory replica of the peer's checkpoints. A
// checkpoint that contradicts the replica (the same seq with another head:
// the peer's journal was rewritten or truncated) raises an alert.

import (
	"encoding/hex"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/journal"
	"github.com/pool-go/pool/internal/wire"
)

// replicaCap bounds a peer's replica: its last 1024 checkpoints.
const replicaCap = 1024

// replica is what one peer has shown of its journal: seq → head, the
// oldest received evicted first.
type replica struct {
	heads map[uint64][32]byte
	order []uint64 // seqs in the order received
	max   uint64
}

// witness holds the replicas and what was sent to each session.
type witness struct {
	mu       sync.Mutex
	replicas map[pool.PublicKey]*replica
	sent     map[*pool.Session]uint64 // seq+1 of the last checkpoint sent
	alertLog *logRate                 // journal entries and ERROR logs: once a minute per peer

	divergences atomic.Uint64 // checkpoints that contradicted a replica
	ignored     atomic.Uint64 // JOURNAL messages that were not a valid CHECKPOINT
}

func newWitness() *witness {
	return &witness{replicas: map[pool.PublicKey]*replica{}, sent: map[*pool.Session]uint64{},
		alertLog: newLogRate(time.Minute, 1024)}
}

// Divergence is a checkpoint that contradicts a peer's replica.
type divergence struct {
	seq        uint64
	held, seen [32]byte
}

// observe adds a peer's checkpoint to its replica and reports whether it
// contradicts what the replica held at that seq. A contradicting head
// replaces the held one, so that one rewrite is one alert.
func (w *witness) observe(peer pool.PublicKey, c wire.JournalCheckpoint) (divergence, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.replicas[peer]
	if r == nil {
		r = &replica{heads: map[uint64][32]byte{}}
		w.replicas[peer] = r
	}
	if held, ok := r.heads[c.Seq]; ok {
		if held == c.Head {
			return divergence{}, false
		}
		r.heads[c.Seq] = c.Head
		return divergence{seq: c.Seq, held: held, seen: c.Head}, true
	}
	r.heads[c.Seq] = c.Head
	r.order = append(r.order, c.Seq)
	if len(r.order) > replicaCap {
		delete(r.heads, r.order[0])
		r.order = append(r.order[:0], r.order[1:]...)
	}
	r.max = max(r.max, c.Seq)
	return divergence{}, false
}

// replicaOf returns a copy of peer's replica (for tests and status).
func (w *witness) replicaOf(peer pool.PublicKey) map[uint64][32]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[uint64][32]byte{}
	if r := w.replicas[peer]; r != nil {
		for k, v := range r.heads {
			out[k] = v
		}
	}
	return out
}

// onJournal is pool.Config.OnJournal: a JOURNAL message from s's peer. A
// message that is not a valid CHECKPOINT is counted and ignored (later
// kinds); a divergence never ends the session.
func (n *Node) onJournal(s *pool.Session, msg []byte) {
	c, err := wire.ParseJournalCheckpoint(msg)
	if err != nil {
		n.witness.ignored.Add(1)
		return
	}
	n.checkpointReceived(s.Peer(), c)
}

// checkpointReceived applies a peer's checkpoint to its replica and
// raises the alert on a divergence.
func (n *Node) checkpointReceived(peer pool.PublicKey, c wire.JournalCheckpoint) {
	d, bad := n.witness.observe(peer, c)
	if !bad {
		return
	}
	n.witness.divergences.Add(1)
	ok, suppressed := n.witness.alertLog.allow(peer.String(), time.Now())
	if !ok {
		return
	}
	held, seen := hex.EncodeToString(d.held[:]), hex.EncodeToString(d.seen[:])
	n.log.Error("journal: a peer's journal diverges from the replica held of it (rewritten or truncated); see docs/PROTOCOL.md §7.16",
		"peer", peer.String(), "peer_name", n.peerName(peer), "seq", d.seq, "held_head", held, "shown_head", seen,
		"suppressed", suppressed)
	n.record(journal.TypeAlert, map[string]string{"event": "peer_journal_divergence", "peer": peer.String(),
		"peer_name": n.peerName(peer), "seq": strconv.FormatUint(d.seq, 10), "held_head": held, "shown_head": seen,
		"suppressed": strconv.FormatUint(suppressed, 10)})
}

// runWitness sends, every interval, a CHECKPOINT of the journal head to
// each session whose peer has given the layer signal and has not yet
// been sent this head.
func (n *Node) runWitness(every time.Duration) {
	defer n.wg.Done()
	if n.journal == nil {
		return
	}
	if every <= 0 {
		every = DefaultHeartbeatInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		seq, head := n.journal.j.Head()
		if seq == 0 {
			continue
		}
		msg := wire.AppendJournalCheckpoint(nil, &wire.JournalCheckpoint{Seq: seq, Head: head})
		n.mu.Lock()
		live := make([]*pool.Session, 0, len(n.sessions))
		for s := range n.sessions {
			live = append(live, s)
		}
		n.mu.Unlock()
		w := n.witness
		w.mu.Lock()
		for s := range w.sent {
			if !contains(live, s) {
				delete(w.sent, s)
			}
		}
		var due []*pool.Session
		for _, s := range live {
			if w.sent[s] != seq+1 && s.LayerUp() {
				w.sent[s] = seq + 1
				due = append(due, s)
			}
		}
		w.mu.Unlock()
		for _, s := range due {
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				_ = s.SendMessage(wire.TypeJournal, msg) // fails only when the session ends
			}()
		}
	}
}

func contains(ss []*pool.Session, s *pool.Session) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
