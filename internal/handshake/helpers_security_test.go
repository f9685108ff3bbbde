package handshake

// Shared fixtures for the adversarial tests (security_test.go, replay_test.go,
// flood_test.go, fuzz_test.go): a fake clock, DH-call counters, and a test bed
// that runs a client and a server over an in-memory path.

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"encoding/binary"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pool-go/pool/internal/addr"
	"github.com/pool-go/pool/internal/seal"
	"github.com/pool-go/pool/internal/wire"
)

// tBase is aligned to 300 s (and so to every rotation period used here):
// 1_700_000_100 = 300 * 5_666_667. Epoch arithmetic in the tests relies on it.
var tBase = time.Unix(1_700_000_100, 0)

// fakeClock is a controllable, race-safe wall clock.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time            { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Set(t time.Time)           { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) Advance(d time.Duration)   { c.ns.Add(int64(d)) }
func (c *fakeClock) At(d time.Duration) func() { return func() { c.Set(tBase.Add(d)) } }

// dhCounter counts X25519 operations through the dh hook.
type dhCounter struct{ n atomic.Int64 }

func (d *dhCounter) fn() dhFunc {
	return func(priv *ecdh.PrivateKey, pub []byte) ([]byte, error) {
		d.n.Add(1)
		return x25519(priv, pub)
	}
}

func (d *dhCounter) get() int64 { return d.n.Load() }

func genID(t testing.TB) *addr.Identity {
	t.Helper()
	id, err := addr.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

var defaultPath = Path{Transport: TransportTCP,
	Client: netip.MustParseAddrPort("192.0.2.10:49152"),
	Server: netip.MustParseAddrPort("198.51.100.20:9253")}

// bed is one server, its clock and DH counter, and one allowed client identity.
type bed struct {
	t     testing.TB
	clock *fakeClock
	sID   *addr.Identity
	cID   *addr.Identity
	srv   *Server
	sDH   *dhCounter
	path  Path
}

// newBed builds a server at tBase+1s (INIT rate limiter off) that allows
// exactly cID. mod may change the config before NewServer.
func newBed(t testing.TB, mod func(*ServerConfig)) *bed {
	t.Helper()
	b := &bed{t: t, clock: newFakeClock(tBase.Add(time.Second)), sID: genID(t), cID: genID(t), sDH: &dhCounter{}, path: defaultPath}
	cfg := ServerConfig{Identity: b.sID, Now: b.clock.Now, InitRate: -1,
		Authorize: func(k addr.PublicKey) bool { return k == b.cID.Public }}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.dh = b.sDH.fn()
	b.srv = srv
	return b
}

// client makes a client for cID pinned to the server's full key, on the
// bed's clock, with a DH counter.
func (b *bed) client(mod func(*ClientConfig)) (*Client, *dhCounter) {
	b.t.Helper()
	pin := b.sID.Public
	cfg := ClientConfig{Identity: b.cID, PeerKey: &pin, Now: b.clock.Now}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		b.t.Fatal(err)
	}
	n := &dhCounter{}
	c.dh = n.fn()
	return c, n
}

// challenge sends c's INIT and returns the CHALLENGE.
func (b *bed) challenge(c *Client) []byte {
	b.t.Helper()
	chal, err := b.srv.HandleInit(nil, c.Init(), b.path)
	if err != nil {
		b.t.Fatalf("HandleInit: %v", err)
	}
	return chal
}

// respond runs INIT and CHALLENGE and returns the CHALLENGE and RESPONSE.
func (b *bed) respond(c *Client) (chal, resp []byte) {
	b.t.Helper()
	chal = b.challenge(c)
	resp, err := c.HandleChallenge(context.Background(), chal)
	if err != nil {
		b.t.Fatalf("HandleChallenge: %v", err)
	}
	return chal, resp
}

// run is one full handshake.
type run struct {
	c                        *Client
	cDH                      *dhCounter
	init, chal, resp, accept []byte
	cEst, sEst               *Established
}

func (b *bed) handshake() run {
	b.t.Helper()
	c, n := b.client(nil)
	return b.finish(c, n)
}

func (b *bed) finish(c *Client, n *dhCounter) run {
	b.t.Helper()
	r := run{c: c, cDH: n, init: c.Init()}
	r.chal, r.resp = b.respond(c)
	var err error
	r.sEst, r.accept, err = b.srv.HandleResponse(r.resp, b.path)
	if err != nil {
		b.t.Fatalf("HandleResponse: %v", err)
	}
	if r.sEst == nil {
		b.t.Fatal("HandleResponse: nil Established for a fresh RESPONSE")
	}
	r.cEst, err = c.HandleAccept(r.accept)
	if err != nil {
		b.t.Fatalf("HandleAccept: %v", err)
	}
	return r
}

// expectDrop presents resp and requires it to fail with want (or, if want
// is nil, with any error) at the cost of exactly wantDH DH operations.
func (b *bed) expectDrop(name string, resp []byte, p Path, want error, wantDH int64) {
	b.t.Helper()
	before := b.sDH.get()
	est, acc, err := b.srv.HandleResponse(resp, p)
	dh := b.sDH.get() - before
	switch {
	case err == nil:
		b.t.Errorf("%s: RESPONSE accepted (est=%v, %d-byte ACCEPT); want rejection", name, est != nil, len(acc))
	case want != nil && !errors.Is(err, want):
		b.t.Errorf("%s: error %v, want %v", name, err, want)
	}
	if est != nil || acc != nil {
		b.t.Errorf("%s: rejected RESPONSE still produced output", name)
	}
	if dh != wantDH {
		b.t.Errorf("%s: %d DH operations, want %d (handshake.md §8.5: no DH before step 7)", name, dh, wantDH)
	}
}

func cancelledCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func clone(b []byte) []byte { return bytes.Clone(b) }

// Byte offsets of the RESPONSE fields (header, then payload at 80).
const (
	offHdrSeq   = 4
	offHdrAck   = 12
	offHdrSID   = 20
	offHdrTS    = 36
	offHdrHMAC  = 48
	offEC       = 80
	offTC       = 80 + 32
	offISNC     = 80 + 40
	offVersions = 80 + 48
	offHint     = 80 + 50
	offTIss     = 80 + 58
	offD        = 80 + 66
	offJ        = 80 + 67
	offN        = 80 + 68
	offCStatic  = 80 + 84
	offCPC      = 80 + 132
)

func addU64(b []byte, off int, delta uint64) {
	binary.BigEndian.PutUint64(b[off:], binary.BigEndian.Uint64(b[off:])+delta)
}

// trafficPacket seals an empty ACK (the client's first c2s packet, §8.6) or
// any plaintext under k at seq.
func trafficPacket(k *seal.DirectionKeys, sid [16]byte, seq uint64, pt []byte) []byte {
	pkt := make([]byte, wire.HeaderLen+len(pt), wire.HeaderLen+len(pt)+wire.TagLen)
	wire.PutHeader(pkt, &wire.Header{Version: wire.Version1, Type: wire.TypeAck, Flags: wire.FlagEncrypted,
		Seq: seq, SID: sid, Length: uint16(len(pt) + wire.TagLen)})
	copy(pkt[wire.HeaderLen:], pt)
	return seal.NewProtector(k).Seal(pkt)
}
