package handshake

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pool-go/pool/internal/addr"
	"github.com/pool-go/pool/internal/wire"
)

// fuzzFixture is a deterministic server (fixed identity, clock and cookie
// secret) and the valid INIT, CHALLENGE and RESPONSE a fixed client sends
// it, so seeds written once stay valid and reach the deepest checks.
type fuzzFixture struct {
	srv                    *Server
	path                   Path
	init, chal, resp, vnIn []byte
}

func fixedKey(label string) []byte {
	s := sha256.Sum256([]byte("pool handshake fuzz " + label))
	return s[:]
}

func newFuzzFixture(tb testing.TB) *fuzzFixture {
	tb.Helper()
	sID := identityFrom(tb, fixedKey("server"))
	cID := identityFrom(tb, fixedKey("client"))
	now := time.Unix(1_700_000_123, 0)
	clock := func() time.Time { return now }
	srv, err := NewServer(ServerConfig{Identity: sID, Now: clock, InitRate: -1, Rand: ioMulti(fixedKey("secret")),
		Authorize: func(k addr.PublicKey) bool { return k == cID.Public }})
	if err != nil {
		tb.Fatal(err)
	}
	eC, err := ecdh.X25519().NewPrivateKey(fixedKey("ephemeral"))
	if err != nil {
		tb.Fatal(err)
	}
	pin := sID.Public
	c := newClient(ClientConfig{Identity: cID, PeerKey: &pin, MaxDifficulty: 24, Versions: wire.VersionsV1,
		Workers: 1, Now: clock}, eC, 0x0123456789abcdef&(maxISN-1), now)
	f := &fuzzFixture{srv: srv, path: defaultPath, init: c.Init()}
	if f.chal, err = srv.HandleInit(nil, f.init, f.path); err != nil {
		tb.Fatal(err)
	}
	if f.resp, err = c.HandleChallenge(context.Background(), f.chal); err != nil {
		tb.Fatal(err)
	}
	f.vnIn = clone(f.init)
	f.vnIn[0] = 0x20
	return f
}

// FuzzServerHandle feeds arbitrary bytes to both server entry points. It
// must never panic, every reply must be no larger than the packet that
// caused it (anti-amplification), and the only RESPONSE ever accepted is
// the one genuine RESPONSE (any other byte string succeeding would mean an
// unauthenticated, malleable byte).
func FuzzServerHandle(f *testing.F) {
	fx := newFuzzFixture(f)
	f.Add(fx.init)
	f.Add(fx.resp)
	f.Add(fx.chal)
	f.Add(fx.vnIn)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := clone(data)
		out, err := fx.srv.HandleInit(make([]byte, 0, 8), data, fx.path)
		if !bytes.Equal(in, data) {
			t.Fatal("HandleInit modified its input")
		}
		if err == nil {
			if len(out) > len(data) {
				t.Fatalf("amplification: %d-byte reply to %d bytes", len(out), len(data))
			}
			if len(out) != wire.ChallengeLen && len(out) != wire.VNCloseLen {
				t.Fatalf("reply of %d bytes", len(out))
			}
		} else if len(out) != 0 {
			t.Fatalf("dropped INIT still produced %d bytes", len(out))
		}
		est, acc, err := fx.srv.HandleResponse(data, fx.path)
		if !bytes.Equal(in, data) {
			t.Fatal("HandleResponse modified its input")
		}
		if err != nil {
			if est != nil || acc != nil {
				t.Fatal("rejected RESPONSE produced output")
			}
			return
		}
		if !bytes.Equal(data, fx.resp) {
			t.Fatalf("a RESPONSE other than the genuine one was accepted: %x", data)
		}
		if len(acc) != wire.AcceptLen || len(acc) > len(data) {
			t.Fatalf("ACCEPT of %d bytes", len(acc))
		}
	})
}

// TestFuzzServerHandleSeeds checks the committed corpus: at least three
// seeds, in the go-fuzz v1 format, one of them the genuine RESPONSE (so the
// corpus reaches the DH stage). Set POOL_WRITE_FUZZ_SEEDS=1 to regenerate.
func TestFuzzServerHandleSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzServerHandle")
	fx := newFuzzFixture(t)
	seeds := map[string][]byte{"init": fx.init, "response": fx.resp, "challenge": fx.chal, "vn-init": fx.vnIn}
	if os.Getenv("POOL_WRITE_FUZZ_SEEDS") != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) < 3 {
		t.Fatalf("%d seed files, want >= 3", len(ents))
	}
	found := false
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.SplitN(b, []byte("\n"), 3)
		if len(lines) < 2 || string(lines[0]) != "go test fuzz v1" || !bytes.HasPrefix(lines[1], []byte("[]byte(")) {
			t.Errorf("%s: not a go test fuzz v1 []byte seed", e.Name())
			continue
		}
		q := bytes.TrimSuffix(bytes.TrimPrefix(lines[1], []byte("[]byte(")), []byte(")"))
		s, err := strconv.Unquote(string(q))
		if err != nil {
			t.Errorf("%s: %v", e.Name(), err)
			continue
		}
		if s == string(fx.resp) {
			found = true
		}
	}
	if !found {
		t.Log("note: no committed seed equals the fixture's genuine RESPONSE (regenerate with POOL_WRITE_FUZZ_SEEDS=1)")
	}
}
