package handshake

// Flood, statelessness, rate-limit and load tests (handshake.md §1.1 P1.7,
// §6, §8.3 "It allocates nothing", §8.11).

import (
	"context"
	"crypto/ecdh"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pool-go/pool/internal/addr"
	"github.com/pool-go/pool/internal/wire"
)

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// 12. The server answers a flood of INITs without keeping anything per INIT.
func TestSecStatelessInitFlood(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 20_000
	}
	for _, limited := range []bool{false, true} {
		b := newBed(t, func(cfg *ServerConfig) {
			if limited {
				cfg.InitRate, cfg.InitBurst = 1e9, 1e9 // table in use, never empty
			}
		})
		eC := genID(t).Public
		in := wire.Init{EC: eC, Versions: wire.VersionsV1, Timestamp: uint64(b.clock.Now().UnixNano())}
		init := wire.AppendInit(make([]byte, 0, wire.InitLen), &in)
		out := make([]byte, 0, 256)
		p := b.path
		// Warm up (first secret, first table use) before measuring.
		if _, err := b.srv.HandleInit(out[:0], init, p); err != nil {
			t.Fatal(err)
		}
		before := heapAlloc()
		for i := 0; i < n; i++ {
			b.clock.Advance(time.Millisecond) // crosses 10 secret rotations
			binary.BigEndian.PutUint64(init[4:12], uint64(i)*0x9e3779b97f4a7c15>>2)
			binary.BigEndian.PutUint64(init[36:44], uint64(b.clock.Now().UnixNano()))
			if limited {
				// A fresh /24 each time: the limiter table must not grow.
				p.Client = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(i))
			}
			var err error
			out, err = b.srv.HandleInit(out[:0], init, p)
			if err != nil {
				t.Fatalf("INIT %d: %v", i, err)
			}
			if len(out) != wire.ChallengeLen || len(out) > len(init) {
				t.Fatalf("CHALLENGE %d bytes for a %d-byte INIT", len(out), len(init))
			}
		}
		after := heapAlloc()
		runtime.KeepAlive(b.srv)
		growth := int64(after) - int64(before)
		t.Logf("limiter=%v: %d INITs, heap %d -> %d (%+d bytes)", limited, n, before, after, growth)
		if growth > 1<<20 {
			t.Errorf("limiter=%v: heap grew %d bytes over %d INITs: per-INIT state (§8.3 \"allocates nothing\")", limited, growth, n)
		}
		if b.srv.cache.Len() != 0 || b.sDH.get() != 0 {
			t.Error("INITs touched the replay cache or ran DH")
		}
	}
	// Every reply sent before validation is no larger than the INIT.
	b := newBed(t, nil)
	c, _ := b.client(nil)
	chal := b.challenge(c)
	v2 := clone(c.Init())
	v2[0] = 0x20
	vn, err := b.srv.HandleInit(nil, v2, b.path)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Init()) != 144 || len(chal) > len(c.Init()) || len(vn) > len(v2) {
		t.Errorf("amplification: INIT %d, CHALLENGE %d, VN CLOSE %d", len(c.Init()), len(chal), len(vn))
	}
}

// 13. Per-/24 token bucket on INITs (and on VN CLOSEs).
func TestSecInitRateLimit(t *testing.T) {
	b := newBed(t, func(cfg *ServerConfig) { cfg.InitRate, cfg.InitBurst = 10, 5 })
	c, _ := b.client(nil)
	init := c.Init()
	from := func(a string) Path {
		p := b.path
		p.Client = netip.MustParseAddrPort(a)
		return p
	}
	send := func(p Path) error { _, err := b.srv.HandleInit(nil, init, p); return err }
	for i := 1; i <= 5; i++ {
		if err := send(from("203.0.113." + strconv.Itoa(i) + ":40000")); err != nil {
			t.Fatalf("INIT %d of the burst: %v", i, err)
		}
	}
	if err := send(from("203.0.113.200:40001")); !errors.Is(err, ErrRateLimited) {
		t.Errorf("6th INIT from the same /24: %v, want ErrRateLimited", err)
	}
	// IPv4-mapped IPv6 is the same prefix.
	if err := send(from("[::ffff:203.0.113.7]:1")); !errors.Is(err, ErrRateLimited) {
		t.Errorf("same /24 as v4-mapped v6: %v, want ErrRateLimited", err)
	}
	// Another /24, chosen so it does not share a bucket of the fixed table.
	slot := func(a string) uint64 {
		pp := Prefix(netip.MustParseAddr(a)).Addr().As16()
		return maphash.Bytes(b.srv.lim.seed, pp[:]) % limiterSlots
	}
	other := ""
	for i := 1; i < 255; i++ {
		a := "198.18." + strconv.Itoa(i) + ".1"
		if slot(a) != slot("203.0.113.1") {
			other = a
			break
		}
	}
	if err := send(from(other + ":40000")); err != nil {
		t.Errorf("INIT from another /24 (%s): %v", other, err)
	}
	// 100 ms refills one token, 1 s refills the burst and no more.
	b.clock.Advance(100 * time.Millisecond)
	if err := send(from("203.0.113.9:1")); err != nil {
		t.Errorf("after 100 ms: %v", err)
	}
	if err := send(from("203.0.113.9:1")); !errors.Is(err, ErrRateLimited) {
		t.Errorf("second INIT after 100 ms: %v, want ErrRateLimited", err)
	}
	b.clock.Advance(time.Second)
	for i := 0; i < 5; i++ {
		if err := send(from("203.0.113.10:1")); err != nil {
			t.Errorf("after 1 s, INIT %d: %v", i+1, err)
		}
	}
	if err := send(from("203.0.113.10:1")); !errors.Is(err, ErrRateLimited) {
		t.Errorf("after 1 s, 6th INIT: %v, want ErrRateLimited (burst cap)", err)
	}
	// A /56 for IPv6: hosts in the same /56 share; a different /56 does not.
	for i := 0; i < 5; i++ {
		if err := send(from("[2001:db8:0:100::" + strconv.Itoa(i+1) + "]:1")); err != nil {
			t.Fatalf("v6 burst %d: %v", i, err)
		}
	}
	if err := send(from("[2001:db8:0:1ff::1]:1")); !errors.Is(err, ErrRateLimited) {
		t.Errorf("6th INIT from the same /56: %v, want ErrRateLimited", err)
	}
	// VN CLOSEs are limited too.
	v2 := clone(init)
	v2[0] = 0x20
	var vnErr error
	for i := 0; i < 6; i++ {
		_, vnErr = b.srv.HandleInit(nil, v2, from("192.0.2.77:1"))
	}
	if !errors.Is(vnErr, ErrRateLimited) {
		t.Errorf("6th VN-triggering INIT: %v, want ErrRateLimited", vnErr)
	}
}

// 14. Adaptive difficulty: above LoadThreshold RESPONSEs/s d rises one bit per
// doubling; it comes back one bit per quiet second.
func TestSecAdaptiveDifficulty(t *testing.T) {
	b := newBed(t, func(cfg *ServerConfig) { cfg.LoadThreshold = 10 })
	if d := b.srv.Difficulty(); d != 16 {
		t.Fatalf("rest difficulty %d", d)
	}
	const burst = 41
	for i := 0; i < burst; i++ {
		b.handshake()
	}
	if d := b.srv.Difficulty(); d != 16 {
		t.Errorf("difficulty changed within the window: %d", d)
	}
	b.clock.Advance(time.Second)
	peak := b.srv.Difficulty()
	t.Logf("after %d RESPONSEs in 1 s with threshold 10: d = %d", burst, peak)
	if peak <= 16 {
		t.Fatalf("difficulty %d after %d RESPONSEs/s over a threshold of 10, want > 16", peak, burst)
	}
	// New CHALLENGEs carry it, and a client must solve at that d.
	c, _ := b.client(nil)
	if chal := b.challenge(c); chal[114] != peak {
		t.Errorf("CHALLENGE d = %d, want %d", chal[114], peak)
	}
	for want := peak - 1; ; want-- {
		b.clock.Advance(time.Second)
		d := b.srv.Difficulty()
		if want < 16 {
			want = 16
		}
		if d != want {
			t.Errorf("quiet second: d = %d, want %d (one step per second)", d, want)
		}
		if want == 16 {
			break
		}
	}
}

// Same policy, read lazily: the server's doc says "one bit per quiet
// second", so after several quiet seconds with no INIT in between the
// difficulty must have come down by that many bits, not by one.
func TestSecAdaptiveDifficultyIdleDecay(t *testing.T) {
	b := newBed(t, func(cfg *ServerConfig) { cfg.LoadThreshold = 2 })
	b.srv.Difficulty()
	for i := 0; i < 20; i++ { // 20 > 2, 10, 5, 2.5: +3 bits
		b.handshake()
	}
	b.clock.Advance(time.Second)
	peak := b.srv.Difficulty()
	if peak < 18 {
		t.Fatalf("premise: peak %d", peak)
	}
	b.clock.Advance(10 * time.Second) // ten quiet seconds, nobody asks
	if d := b.srv.Difficulty(); d != 16 {
		t.Errorf("BUG: after 10 quiet seconds (no INIT in between) difficulty is %d, want 16: "+
			"difficulty.roll (server.go:494) lowers d by one bit per call, not per elapsed quiet second, so after "+
			"an idle period the first clients still face d up to max-1", d)
	}
}

// Overload: more RESPONSEs in the DH stage than MaxInFlight are dropped
// (after the replay insert, before DH) and raise d.
func TestSecOverload(t *testing.T) {
	b := newBed(t, func(cfg *ServerConfig) { cfg.MaxInFlight = 1 })
	c1, _ := b.client(nil)
	_, resp1 := b.respond(c1)
	c2, _ := b.client(nil)
	_, resp2 := b.respond(c2)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var count dhCounter
	b.srv.dh = func(priv *ecdh.PrivateKey, pub []byte) ([]byte, error) {
		count.n.Add(1)
		once.Do(func() { close(entered); <-release })
		return x25519(priv, pub)
	}
	done := make(chan error, 1)
	go func() { _, _, err := b.srv.HandleResponse(resp1, b.path); done <- err }()
	<-entered
	d0 := b.srv.Difficulty()
	if _, _, err := b.srv.HandleResponse(resp2, b.path); !errors.Is(err, ErrOverload) {
		t.Errorf("second RESPONSE while one is in DH with MaxInFlight 1: %v, want ErrOverload", err)
	}
	if count.get() != 1 {
		t.Errorf("overloaded RESPONSE ran DH (%d total)", count.get())
	}
	if d := b.srv.Difficulty(); d <= d0 {
		t.Errorf("overload did not raise d (%d)", d)
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("first RESPONSE: %v", err)
	}
}

// Many handshakes at once against one server (run with -race).
func TestSecConcurrentHandshakes(t *testing.T) {
	b := newBed(t, func(cfg *ServerConfig) { cfg.Authorize = func(addr.PublicKey) bool { return true } })
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id, err := addr.Generate()
			if err != nil {
				errs <- err
				return
			}
			pin := b.sID.Public
			c, err := NewClient(ClientConfig{Identity: id, PeerKey: &pin, Now: b.clock.Now, Workers: 1})
			if err != nil {
				errs <- err
				return
			}
			p := b.path
			p.Client = netip.AddrPortFrom(p.Client.Addr(), uint16(1000+i))
			chal, err := b.srv.HandleInit(nil, c.Init(), p)
			if err != nil {
				errs <- err
				return
			}
			resp, err := c.HandleChallenge(context.Background(), chal)
			if err != nil {
				errs <- err
				return
			}
			sEst, acc, err := b.srv.HandleResponse(resp, p)
			if err != nil {
				errs <- err
				return
			}
			// A concurrent duplicate of our own RESPONSE gets the cache.
			if _, acc2, err := b.srv.HandleResponse(resp, p); err != nil || string(acc2) != string(acc) {
				errs <- errors.New("duplicate: " + errString(err))
				return
			}
			cEst, err := c.HandleAccept(acc)
			if err != nil {
				errs <- err
				return
			}
			if cEst.Keys != sEst.Keys || sEst.Peer != id.Public {
				errs <- errors.New("keys or peer differ")
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := b.srv.Stats(); st.Accepted != n {
		t.Errorf("accepted %d of %d", st.Accepted, n)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// Robustness: odd paths and clocks must not crash the server. Any INIT
// reaches secretRing.current, so a panic there is a remote crash.
func TestSecNoPanicOddPathOrClock(t *testing.T) {
	for _, p := range []Path{{}, {Transport: 255}, {Client: netip.AddrPortFrom(netip.IPv6Unspecified(), 0)}} {
		b := newBed(t, func(cfg *ServerConfig) { cfg.InitRate, cfg.InitBurst = 10, 5 })
		c, _ := b.client(nil)
		if _, err := b.srv.HandleInit(nil, c.Init(), p); err != nil {
			t.Errorf("path %+v: %v", p, err)
		}
	}
	for _, at := range []time.Time{time.Unix(0, 0), time.Unix(-15, 0), time.Unix(-3600, 0)} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("BUG (low severity): server wall clock at %v: HandleInit panics (%v). "+
						"secretRing.current (cookie.go) computes j = uint8(e %% 4) with a negative epoch "+
						"before 1970, indexing slot 255; -1 is also the ring's \"empty\" sentinel. "+
						"Fix: reject or clamp pre-1970 clocks, or use a floored modulo and a separate valid flag", at, r)
				}
			}()
			b := newBed(t, nil)
			b.clock.Set(at)
			c, _ := b.client(nil)
			_, _ = b.srv.HandleInit(nil, c.Init(), b.path)
		}()
	}
}
