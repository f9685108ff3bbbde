package node

import (
	"crypto/sha256"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/journal"
	"github.com/pool-go/pool/internal/wire"
)

// alerts returns the peer_journal_divergence alerts in the journal at path.
func alerts(t *testing.T, path string) []journal.Entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := journal.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []journal.Entry
	for {
		e, err := rd.Next()
		if err != nil {
			if err != io.EOF && !strings.Contains(err.Error(), "torn") {
				t.Fatal(err)
			}
			return out
		}
		if e.Type == journal.TypeAlert && e.Detail["event"] == "peer_journal_divergence" {
			out = append(out, e)
		}
	}
}

// witnessPair starts A (listening) and B (dialing A), both with a 100 ms
// heartbeat so that journal runs flow quickly.
func witnessPair(t *testing.T, dir string) (aPath, bPath string, aID *pool.Identity) {
	t.Helper()
	bKey, bID := newKeyFile(t, dir, "b.key")
	allowed := writeFile(t, filepath.Join(dir, "allowed"), bID.Public.String()+"\n")
	aPath, aID = listenerConfig(t, dir, "a", freeAddr(t), allowed)
	writeFile(t, aPath, readFile(t, aPath)+"heartbeat_interval = \"100ms\"\n")
	addr := strings.Split(strings.Split(readFile(t, aPath), "listen = \"")[1], "\"")[0]
	bText := dialerText(bKey, filepath.Join(dir, "b.sock"), testPeer{"a", addr, aID.Public})
	bText = strings.Replace(bText, `listen = "off"`, "listen = \"off\"\nheartbeat_interval = \"100ms\"", 1)
	return aPath, writeFile(t, filepath.Join(dir, "b.toml"), bText), aID
}

// waitReplicaHead waits until b's replica of peer holds a's journal head.
func waitReplicaHead(t *testing.T, a, b *Node, peer pool.PublicKey) (uint64, [32]byte) {
	t.Helper()
	var seq uint64
	var head [32]byte
	waitFor(t, 10*time.Second, "A's head in B's replica", func() bool {
		seq, head = a.journal.j.Head()
		h, ok := b.witness.replicaOf(peer)[seq]
		return ok && h == head
	})
	return seq, head
}

// TestJournalWitness: A's entry hashes reach B's replica of A's journal; a
// run that contradicts it, fed to B's handler, raises the alert (counter,
// journal entry) without ending the session.
func TestJournalWitness(t *testing.T) {
	dir := t.TempDir()
	aPath, bPath, aID := witnessPair(t, dir)
	a := startNode(t, aPath, Options{})
	defer shutdown(t, a)
	b := startNode(t, bPath, Options{})
	defer shutdown(t, b)
	waitFor(t, 10*time.Second, "B connected to A", func() bool { return peerByName(b, "a").State == StateConnected })
	seq, head := waitReplicaHead(t, a, b, aID.Public)
	if got := b.journalStatus().PeerDivergences; got != 0 {
		t.Fatalf("divergences before: %d", got)
	}
	sess := nodeSession(b, aID.Public)

	// A rewritten journal: the entry at seq shown with another hash.
	first, prev, hs := a.journal.j.Hashes(seq, 1)
	if first != seq || hs[0] != head {
		t.Fatalf("A's own run at %d: %d %x", seq, first, hs)
	}
	bad := head
	bad[0] ^= 0xff
	b.onJournal(sess, wire.AppendJournalHashes(nil, &wire.JournalHashes{First: seq, Prev: prev, Hashes: [][32]byte{bad}}))
	if got := b.journalStatus().PeerDivergences; got != 1 {
		t.Fatalf("divergences after: %d, want 1", got)
	}
	// Garbage is ignored, not a divergence.
	b.onJournal(sess, []byte{9, 9})
	b.onJournal(sess, []byte{wire.JournalKindHashes, 0, 0})
	if got := b.journalStatus().PeerDivergences; got != 1 || b.witness.ignored.Load() != 2 {
		t.Fatalf("divergences %d, ignored %d", got, b.witness.ignored.Load())
	}
	if nodeSession(b, aID.Public) != sess {
		t.Fatal("the divergence ended the session")
	}
	var found bool
	for _, e := range alerts(t, b.journal.j.Path()) {
		found = found || (e.Detail["peer"] == aID.Public.String() && e.Detail["kind"] == "rewritten" &&
			e.Detail["held_head"] != e.Detail["shown_head"])
	}
	if !found {
		t.Fatal("no divergence alert in B's journal")
	}
}

// TestJournalWitnessAcrossRestarts is the attack the replica exists for:
// both nodes stop, A's journal loses its last entries (whole records: A's
// own verification cannot tell), both start again; B, from the replica it
// kept on disk, sees that A's journal no longer holds what A showed it.
// A restart without tampering raises nothing.
func TestJournalWitnessAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	aPath, bPath, aID := witnessPair(t, dir)
	run := func() (*Node, *Node) {
		a := startNode(t, aPath, Options{})
		b := startNode(t, bPath, Options{})
		waitFor(t, 10*time.Second, "B connected to A", func() bool { return peerByName(b, "a").State == StateConnected })
		return a, b
	}
	a, b := run()
	waitReplicaHead(t, a, b, aID.Public)
	shutdown(t, b)
	shutdown(t, a)
	bJournal := b.journal.j.Path()
	if _, err := os.Stat(replicaFile(replicaDir(bJournal), aID.Public)); err != nil {
		t.Fatalf("B kept no replica of A on disk: %v", err)
	}

	a, b = run() // an honest restart
	waitReplicaHead(t, a, b, aID.Public)
	if got := b.journalStatus().PeerDivergences; got != 0 {
		t.Fatalf("an honest restart raised %d divergences: %+v", got, alerts(t, bJournal))
	}
	shutdown(t, b)
	shutdown(t, a)

	// Cut A's last three entries at a record boundary.
	aJournal := a.journal.j.Path()
	var ends []int64
	f, err := os.Open(aJournal)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := journal.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := rd.Next(); err != nil {
			break
		}
		ends = append(ends, rd.Offset())
	}
	f.Close()
	if err := os.Truncate(aJournal, ends[len(ends)-4]); err != nil {
		t.Fatal(err)
	}
	if n, err := journal.Verify(aJournal); err != nil {
		t.Fatalf("the cut journal does not verify (%d, %v): the test would prove nothing", n, err)
	}

	a, b = run()
	defer shutdown(t, a)
	defer shutdown(t, b)
	waitFor(t, 10*time.Second, "B's divergence alert", func() bool { return b.journalStatus().PeerDivergences > 0 })
	es := alerts(t, bJournal)
	if len(es) != 1 || es[0].Detail["peer"] != aID.Public.String() {
		t.Fatalf("B's alerts: %+v", es)
	}
	t.Logf("B's alert: %v", es[0].Detail)
}

// run of hashes for entries first..first+n-1 of a made-up chain seeded by s.
func chainRun(s byte, first uint64, n int) wire.JournalHashes {
	h := func(seq uint64) [32]byte {
		var b [9]byte
		b[0] = s
		binary.BigEndian.PutUint64(b[1:], seq)
		return sha256.Sum256(b[:])
	}
	r := wire.JournalHashes{First: first, Prev: h(first - 1)}
	for i := range n {
		r.Hashes = append(r.Hashes, h(first+uint64(i)))
	}
	return r
}

// TestReplicaRules: what extends a replica, what is a divergence, and its
// bound.
func TestReplicaRules(t *testing.T) {
	var r replica
	must := func(what string, h wire.JournalHashes, sole bool, wantKind string) {
		t.Helper()
		d, bad := r.observeHashes(&h, sole)
		switch {
		case wantKind == "" && bad:
			t.Fatalf("%s: divergence %+v", what, d)
		case wantKind != "" && (!bad || d.kind != wantKind):
			t.Fatalf("%s: got %+v %v, want a %s divergence", what, d, bad, wantKind)
		}
	}
	must("first run", chainRun(1, 1, 10), true, "")
	must("adjacent", chainRun(1, 11, 5), false, "")
	must("overlapping", chainRun(1, 8, 20), false, "")
	if r.first != 1 || r.last() != 27 {
		t.Fatalf("replica %d..%d, want 1..27", r.first, r.last())
	}
	must("an older START run on another session", func() wire.JournalHashes { h := chainRun(1, 3, 5); h.Start = true; return h }(), false, "")
	must("a START run that ends early, sole session", func() wire.JournalHashes { h := chainRun(1, 3, 5); h.Start = true; return h }(), true, divergenceTruncated)
	must("then the new run is the replica", chainRun(1, 8, 1), false, "")

	r = replica{}
	must("first run", chainRun(1, 1, 10), true, "")
	other := chainRun(2, 5, 3) // entry 5 on is another chain
	other.Prev = chainRun(1, 4, 1).Hashes[0]
	must("entries rewritten from 5", other, false, divergenceRewritten)
	must("one rewrite is one alert", chainRun(2, 8, 2), false, "")
	r = replica{}
	must("first run", chainRun(1, 1, 10), true, "")
	bad := chainRun(1, 11, 2)
	bad.Prev[0] ^= 1
	must("a run that does not link", bad, false, divergenceRewritten)
	must("a gap starts again", chainRun(3, 100, 2), false, "")
	if r.first != 100 || r.last() != 101 {
		t.Fatalf("after a gap: %d..%d", r.first, r.last())
	}
	if _, bad := r.observeCheckpoint(wire.JournalCheckpoint{Seq: 101, Head: chainRun(3, 101, 1).Hashes[0]}); bad {
		t.Fatal("a matching checkpoint diverges")
	}
	if d, bad := r.observeCheckpoint(wire.JournalCheckpoint{Seq: 100, Head: [32]byte{1}}); !bad || d.heldSeq != 100 {
		t.Fatalf("a contradicting checkpoint: %+v %v", d, bad)
	}

	// The bound: the last replicaCap hashes, prev the one before.
	r = replica{}
	for first := uint64(1); first < 3*replicaCap; first += wire.JournalMaxHashes {
		must("filling", chainRun(4, first, wire.JournalMaxHashes), false, "")
	}
	if len(r.hashes) != replicaCap || r.prev != chainRun(4, r.first-1, 1).Hashes[0] {
		t.Fatalf("replica of %d hashes from %d", len(r.hashes), r.first)
	}

	// On disk and back; a damaged file is refused.
	dir := t.TempDir()
	var k pool.PublicKey
	k[0] = 7
	if err := writeReplica(dir, k, &r); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, strings.Repeat("ab", 32)+".replica"), "POOLRPL1 short")
	rs, errs := loadReplicas(dir)
	if got := rs[k]; got == nil || got.first != r.first || got.prev != r.prev || len(got.hashes) != replicaCap ||
		got.hashes[100] != r.hashes[100] || len(rs) != 1 || len(errs) != 1 {
		t.Fatalf("loaded %d replicas, errors %v", len(rs), errs)
	}
}

// TestReplicaBound: at most maxReplicas peers are held; the least recently
// updated goes first.
func TestReplicaBound(t *testing.T) {
	w := newWitness()
	run := chainRun(1, 1, 1)
	for i := range maxReplicas + 1 {
		var k pool.PublicKey
		binary.BigEndian.PutUint32(k[:], uint32(i))
		w.observe(k, func(r *replica) (divergence, bool) { return r.observeHashes(&run, true) })
	}
	var first pool.PublicKey
	if len(w.replicas) != maxReplicas || w.replicas[first] != nil {
		t.Fatalf("%d replicas; the oldest kept: %v", len(w.replicas), w.replicas[first] != nil)
	}
}
