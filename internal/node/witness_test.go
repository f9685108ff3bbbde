package node

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pool-go/pool/internal/journal"
	"github.com/pool-go/pool/internal/wire"
)

// TestJournalWitness: A's checkpoints reach B's replica of A's journal; a
// conflicting checkpoint fed to B's handler raises the alert (counter,
// journal entry) without ending the session.
func TestJournalWitness(t *testing.T) {
	dir := t.TempDir()
	bKey, bID := newKeyFile(t, dir, "b.key")
	allowed := writeFile(t, filepath.Join(dir, "allowed"), bID.Public.String()+"\n")
	aPath, aID := listenerConfig(t, dir, "a", "127.0.0.1:0", allowed)
	writeFile(t, aPath, readFile(t, aPath)+"heartbeat_interval = \"100ms\"\n")
	a := startNode(t, aPath, Options{})
	bText := dialerText(bKey, filepath.Join(dir, "b.sock"), testPeer{"a", a.ListenAddr().String(), aID.Public})
	bText = strings.Replace(bText, `listen = "off"`, "listen = \"off\"\nheartbeat_interval = \"100ms\"", 1)
	b := startNode(t, writeFile(t, filepath.Join(dir, "b.toml"), bText), Options{})
	waitFor(t, 10*time.Second, "B connected to A", func() bool { return peerByName(b, "a").State == StateConnected })

	// A's current head reaches B's replica.
	var seq uint64
	var head [32]byte
	waitFor(t, 10*time.Second, "A's head in B's replica", func() bool {
		seq, head = a.journal.j.Head()
		h, ok := b.witness.replicaOf(aID.Public)[seq]
		return ok && h == head
	})
	if got := b.journalStatus().PeerDivergences; got != 0 {
		t.Fatalf("divergences before: %d", got)
	}
	sess := nodeSession(b, aID.Public)

	// A rewritten journal: the same seq with another head.
	bad := head
	bad[0] ^= 0xff
	b.onJournal(sess, wire.AppendJournalCheckpoint(nil, &wire.JournalCheckpoint{Seq: seq, Head: bad}))
	if got := b.journalStatus().PeerDivergences; got != 1 {
		t.Fatalf("divergences after: %d, want 1", got)
	}
	// Garbage is ignored, not a divergence.
	b.onJournal(sess, []byte{9, 9})
	if got := b.journalStatus().PeerDivergences; got != 1 || b.witness.ignored.Load() != 1 {
		t.Fatalf("divergences %d, ignored %d", got, b.witness.ignored.Load())
	}
	if nodeSession(b, aID.Public) != sess {
		t.Fatal("the divergence ended the session")
	}

	// B's own journal holds the alert.
	found := false
	f, err := os.Open(b.journal.j.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := journal.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	for {
		e, err := rd.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if e.Type == journal.TypeAlert && e.Detail["event"] == "peer_journal_divergence" &&
			e.Detail["peer"] == aID.Public.String() && e.Detail["held_head"] != e.Detail["shown_head"] {
			found = true
		}
	}
	if !found {
		t.Fatal("no divergence alert in B's journal")
	}
}

// TestReplicaBound: the replica keeps the last 1024 checkpoints.
func TestReplicaBound(t *testing.T) {
	w := newWitness()
	_, id := newKeyFile(t, t.TempDir(), "k.key")
	for i := uint64(1); i <= replicaCap+10; i++ {
		if _, bad := w.observe(id.Public, wire.JournalCheckpoint{Seq: i, Head: [32]byte{byte(i)}}); bad {
			t.Fatal("divergence on a new seq")
		}
	}
	r := w.replicaOf(id.Public)
	if _, ok := r[10]; len(r) != replicaCap || ok {
		t.Fatalf("replica holds %d, seq 10 present %v", len(r), ok)
	}
	if _, bad := w.observe(id.Public, wire.JournalCheckpoint{Seq: 500, Head: [32]byte{1}}); !bad {
		t.Fatal("a lower seq with another head is not a divergence")
	}
}
