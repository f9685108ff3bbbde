package selftest

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/pool-go/pool/internal/testutil"
)

// setCorrupt makes want() serve prim's expected values with a bit flipped
// until the test ends. Tests using it must not run in parallel.
func setCorrupt(t testing.TB, prim string) {
	t.Helper()
	corruptHook.Store(&prim)
	t.Cleanup(func() { corruptHook.Store(nil) })
}

func TestRunPasses(t *testing.T) {
	if err := Run(); err != nil {
		t.Fatal(err)
	}
}

func TestEachKAT(t *testing.T) {
	for _, k := range kats {
		t.Run(k.name, func(t *testing.T) {
			if err := runOne(k); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCorruptedExpectedValueIsCaught flips one bit of one primitive's
// expected values at a time: Run must fail, name exactly that primitive,
// and let every other primitive pass.
func TestCorruptedExpectedValueIsCaught(t *testing.T) {
	for _, k := range kats {
		t.Run(k.name, func(t *testing.T) {
			setCorrupt(t, k.name)
			err := Run()
			if err == nil {
				t.Fatal("Run passed with a corrupted expected value")
			}
			if !errors.Is(err, ErrKAT) {
				t.Fatalf("error %v does not wrap ErrKAT", err)
			}
			var ke *KATError
			if !errors.As(err, &ke) || ke.Primitive != k.name {
				t.Fatalf("error %v does not name %q", err, k.name)
			}
			if !strings.Contains(err.Error(), k.name) {
				t.Fatalf("message %q does not name %q", err, k.name)
			}
			if n := strings.Count(err.Error(), "known-answer test failed"); n != 1 {
				t.Fatalf("%d primitives failed, want 1: %v", n, err)
			}
		})
	}
}

// TestPanicIsAFailure: a primitive that panics (say, a patched one) fails
// its KAT instead of taking the node down.
func TestPanicIsAFailure(t *testing.T) {
	err := runOne(kat{"boom", func() error { panic("patched") }})
	var ke *KATError
	if !errors.As(err, &ke) || ke.Primitive != "boom" || !strings.Contains(ke.Detail, "patched") {
		t.Fatalf("got %v", err)
	}
}

func TestRunReportsEveryFailure(t *testing.T) {
	saved := kats
	t.Cleanup(func() { kats = saved })
	fail := func() error { return errors.New("x") }
	kats = []kat{{"a", fail}, {"b", func() error { return nil }}, {"c", fail}}
	err := Run()
	var names []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		names = append(names, e.(*KATError).Primitive)
	}
	if strings.Join(names, ",") != "a,c" {
		t.Fatalf("failures %v, want a,c", names)
	}
}

// TestPOOLConstantsMatchGoldenFile: the POOL vectors compiled into the KATs
// are the ones of testdata/handshake-v1.json, so they cannot drift from the
// file the protocol tests reproduce.
func TestPOOLConstantsMatchGoldenFile(t *testing.T) {
	v := testutil.LoadVectors(t, "../../testdata/handshake-v1.json")
	for _, c := range []struct {
		path string
		got  []byte
	}{
		{"puzzle.handshake.hash", puzzleWant},
		{"puzzle.handshake.N", puzzleN},
		{"puzzle.seed_SID", puzzleSID},
		{"key_schedule.ck0", ksCK0},
		{"key_schedule.dh_es", ksDHES},
		{"key_schedule.ck1", ksCK1},
		{"key_schedule.dh_ss", x61Shared},
		{"key_schedule.M0", ksM0},
		{"key_schedule.R0", ksR0},
		{"key_schedule.traffic_keys_epoch0.c2s.enc", ksC2SEnc},
		{"key_schedule.traffic_keys_epoch0.c2s.hmac", ksC2SHMAC},
		{"key_schedule.traffic_keys_epoch0.c2s.seq", ksC2SSeq},
		{"key_schedule.traffic_keys_epoch0.s2c.enc", ksS2CEnc},
		{"key_schedule.traffic_keys_epoch0.s2c.hmac", ksS2CHMAC},
		{"key_schedule.traffic_keys_epoch0.s2c.seq", ksS2CSeq},
		{"inputs.client_static_private", x61AlicePriv},
		{"inputs.client_static_public", x61AlicePub},
		{"inputs.server_static_private", x61BobPriv},
		{"inputs.server_static_public", x61BobPub},
		{"traffic_epoch0.0.plaintext_hex", pktPlain},
		{"traffic_epoch0.0.nonce", pktNonce},
		{"traffic_epoch0.0.packet", pktWant},
	} {
		if want := v.Hex(t, c.path); !bytes.Equal(c.got, want) {
			t.Errorf("%s: compiled-in %x, file %x", c.path, c.got, want)
		}
	}
	if v.Str(t, "traffic_epoch0.0.direction") != "c2s" {
		t.Error("traffic_epoch0[0] is not the c2s packet")
	}
	if got := v.U64(t, "traffic_epoch0.0.header.seq"); got != pktSeq {
		t.Errorf("seq %#x, file %#x", pktSeq, got)
	}
}

func BenchmarkRun(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if err := Run(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKAT(b *testing.B) {
	for _, k := range kats {
		b.Run(k.name, func(b *testing.B) {
			for b.Loop() {
				if err := runOne(k); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCorruptForTest: the exported hook other packages' tests use fails
// exactly the named primitive until restored, and refuses unknown names.
func TestCorruptForTest(t *testing.T) {
	restore := CorruptForTest(PrimHKDF)
	err := Run()
	restore()
	var ke *KATError
	if !errors.As(err, &ke) || ke.Primitive != PrimHKDF {
		t.Fatalf("Run with HKDF corrupted: %v", err)
	}
	if err := Run(); err != nil {
		t.Fatalf("Run after restore: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("CorruptForTest accepted an unknown primitive")
		}
	}()
	CorruptForTest("MD5")
}
