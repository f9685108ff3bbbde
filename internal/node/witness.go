package node

// The journal witness (PROTOCOL.md §7.16; draft §10, §17): each node sends
// its peers the hashes of its change-journal entries (JOURNAL HASHES) and
// keeps, per peer identity key, a replica of theirs (replica.go). What a
// peer shows that contradicts its replica -- another hash for an entry
// already held, or a journal shorter than before -- raises an alert.

import (
	"encoding/hex"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/journal"
	"github.com/pool-go/pool/internal/wire"
)

// maxRunsPerTick bounds what one session is sent per interval (about
// 2000 entries, 64 KiB), so a peer far behind is caught up gradually.
const maxRunsPerTick = 8

// witness holds the replicas and what was sent to each session.
type witness struct {
	mu       sync.Mutex
	dir      string // where replicas are kept; "" without a journal (memory only)
	replicas map[pool.PublicKey]*replica
	clock    uint64                   // update counter: eviction order
	sent     map[*pool.Session]uint64 // last entry sent on each session
	busy     map[*pool.Session]bool   // a send to it is under way
	alertLog *logRate                 // journal entries and ERROR logs: once a minute per peer

	divergences atomic.Uint64 // runs or checkpoints that contradicted a replica
	ignored     atomic.Uint64 // JOURNAL messages that were not well formed
}

func newWitness() *witness {
	return &witness{replicas: map[pool.PublicKey]*replica{}, sent: map[*pool.Session]uint64{},
		busy: map[*pool.Session]bool{}, alertLog: newLogRate(time.Minute, 1024)}
}

// replicaDir is where a node whose journal is at journalPath keeps its
// peers' replicas.
func replicaDir(journalPath string) string { return journalPath + ".replicas" }

// load reads the replicas kept in dir and keeps them there from now on.
func (w *witness) load(dir string, warn func(error)) {
	rs, errs := loadReplicas(dir)
	for _, err := range errs {
		warn(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dir = dir
	for k, r := range rs {
		w.replicas[k] = r
	}
}

// observe applies f to peer's replica (created if new; the least recently
// updated dropped past maxReplicas).
func (w *witness) observe(peer pool.PublicKey, f func(*replica) (divergence, bool)) (divergence, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.replicas[peer]
	if r == nil {
		if len(w.replicas) >= maxReplicas {
			w.evictLocked()
		}
		r = &replica{}
		w.replicas[peer] = r
	}
	w.clock++
	r.tick = w.clock
	return f(r)
}

func (w *witness) evictLocked() {
	var oldest pool.PublicKey
	oldestTick := ^uint64(0)
	for k, r := range w.replicas {
		if r.tick < oldestTick {
			oldest, oldestTick = k, r.tick
		}
	}
	delete(w.replicas, oldest)
	if w.dir != "" {
		_ = os.Remove(replicaFile(w.dir, oldest))
	}
}

// replicaOf returns a copy of peer's replica as seq → hash (tests, status).
func (w *witness) replicaOf(peer pool.PublicKey) map[uint64][32]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[uint64][32]byte{}
	if r := w.replicas[peer]; r != nil {
		for i, h := range r.hashes {
			out[r.first+uint64(i)] = h
		}
	}
	return out
}

// persist writes every replica changed since the last call.
func (w *witness) persist(warn func(error)) {
	type job struct {
		peer pool.PublicKey
		r    replica
	}
	w.mu.Lock()
	if w.dir == "" {
		w.mu.Unlock()
		return
	}
	var jobs []job
	for k, r := range w.replicas {
		if r.dirty {
			r.dirty = false
			jobs = append(jobs, job{k, replica{first: r.first, prev: r.prev, hashes: append([][32]byte(nil), r.hashes...)}})
		}
	}
	dir := w.dir
	w.mu.Unlock()
	for _, j := range jobs {
		if err := writeReplica(dir, j.peer, &j.r); err != nil {
			warn(err)
		}
	}
}

// onJournal is pool.Config.OnJournal: a JOURNAL message from s's peer. A
// message that is not a well-formed HASHES or CHECKPOINT is counted and
// ignored (later kinds); a divergence never ends the session.
func (n *Node) onJournal(s *pool.Session, msg []byte) {
	peer := s.Peer()
	if len(msg) > 0 && msg[0] == wire.JournalKindHashes {
		h, err := wire.ParseJournalHashes(msg)
		if err != nil {
			n.witness.ignored.Add(1)
			return
		}
		sole := n.otherSessions(s) == 0
		n.witnessed(peer, func(r *replica) (divergence, bool) { return r.observeHashes(&h, sole) })
		return
	}
	c, err := wire.ParseJournalCheckpoint(msg)
	if err != nil {
		n.witness.ignored.Add(1)
		return
	}
	n.witnessed(peer, func(r *replica) (divergence, bool) { return r.observeCheckpoint(c) })
}

// otherSessions counts the node's sessions with s's peer other than s.
func (n *Node) otherSessions(s *pool.Session) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for o := range n.sessions {
		if o != s && o.Peer() == s.Peer() {
			c++
		}
	}
	return c
}

// witnessed applies what peer showed to its replica and raises the alert
// on a divergence.
func (n *Node) witnessed(peer pool.PublicKey, f func(*replica) (divergence, bool)) {
	d, bad := n.witness.observe(peer, f)
	if !bad {
		return
	}
	n.witness.divergences.Add(1)
	ok, suppressed := n.witness.alertLog.allow(peer.String(), time.Now())
	if !ok {
		return
	}
	held, seen := hex.EncodeToString(d.held[:]), hex.EncodeToString(d.seen[:])
	n.log.Error("journal: a peer's journal diverges from the replica held of it ("+d.kind+"); see docs/PROTOCOL.md §7.16",
		"peer", peer.String(), "peer_name", n.peerName(peer), "kind", d.kind, "held_seq", d.heldSeq, "held_head", held,
		"shown_seq", d.seenSeq, "shown_head", seen, "suppressed", suppressed)
	n.record(journal.TypeAlert, map[string]string{"event": "peer_journal_divergence", "peer": peer.String(),
		"peer_name": n.peerName(peer), "kind": d.kind, "seq": strconv.FormatUint(d.heldSeq, 10), "held_head": held,
		"shown_seq": strconv.FormatUint(d.seenSeq, 10), "shown_head": seen,
		"suppressed": strconv.FormatUint(suppressed, 10)})
}

// runWitness, every interval, sends each session whose peer has given the
// layer signal the hashes of the entries it has not been sent (the first
// run of a session: the last JournalMaxHashes up to the head, flagged
// START), and writes the replicas that changed.
func (n *Node) runWitness(every time.Duration) {
	defer n.wg.Done()
	warn := func(err error) { n.log.Warn("journal: peer replica", "err", err) }
	defer n.witness.persist(warn)
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
		n.witness.persist(warn)
		if n.journal != nil {
			n.sendHashes()
		}
	}
}

func (n *Node) sendHashes() {
	j := n.journal.j
	head, _ := j.Head()
	if head == 0 {
		return
	}
	n.mu.Lock()
	live := make(map[*pool.Session]bool, len(n.sessions))
	for s := range n.sessions {
		live[s] = true
	}
	n.mu.Unlock()
	w := n.witness
	w.mu.Lock()
	defer w.mu.Unlock()
	for s := range w.sent {
		if !live[s] {
			delete(w.sent, s)
		}
	}
	for s := range live {
		last, started := w.sent[s]
		if w.busy[s] || last >= head || !s.LayerUp() {
			continue
		}
		from := last + 1
		if !started && head > wire.JournalMaxHashes {
			from = head - wire.JournalMaxHashes + 1
		}
		var msgs [][]byte
		for len(msgs) < maxRunsPerTick {
			first, prev, hs := j.Hashes(from, wire.JournalMaxHashes)
			if hs == nil {
				break
			}
			msgs = append(msgs, wire.AppendJournalHashes(nil, &wire.JournalHashes{
				Start: !started && len(msgs) == 0, First: first, Prev: prev, Hashes: hs}))
			from = first + uint64(len(hs))
		}
		if len(msgs) == 0 {
			continue
		}
		w.sent[s], w.busy[s] = from-1, true
		n.wg.Add(1)
		go func() { // one at a time per session, so runs arrive in order
			defer n.wg.Done()
			for _, m := range msgs {
				if s.SendMessage(wire.TypeJournal, m) != nil {
					break // the session ended
				}
			}
			w.mu.Lock()
			delete(w.busy, s)
			w.mu.Unlock()
		}()
	}
}
