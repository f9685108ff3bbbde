package wire

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"testing"
)

func TestIntegrityLayout(t *testing.T) {
	nonce := fill32(0x5c)
	ch := AppendIntegrity([]byte{0xee}, &Integrity{Kind: IntegrityChallenge, Epoch: 9, Nonce: nonce, Proof: fill32(1)})
	want := append([]byte{0xee, 1, 0, 0, 0}, nonce[:]...) // Epoch and Proof are not part of a challenge
	if !bytes.Equal(ch, want) || len(ch)-1 != IntegrityChallengeLen {
		t.Fatalf("challenge = %x, want %x", ch, want)
	}
	proof := fill32(0xa7)
	resp := AppendIntegrity(nil, &Integrity{Kind: IntegrityResponse, Epoch: 0x01020304, Nonce: nonce, Proof: proof})
	want = append([]byte{2, 0, 0, 0, 1, 2, 3, 4}, nonce[:]...)
	want = append(want, proof[:]...)
	if !bytes.Equal(resp, want) || len(resp) != IntegrityResponseLen {
		t.Fatalf("response = %x, want %x", resp, want)
	}
}

func TestIntegrityRoundTrip(t *testing.T) {
	for _, m := range []Integrity{
		{Kind: IntegrityChallenge}, {Kind: IntegrityChallenge, Nonce: fill32(0xff)},
		{Kind: IntegrityResponse}, {Kind: IntegrityResponse, Epoch: 0xffffffff, Nonce: fill32(3), Proof: fill32(4)},
	} {
		got, err := ParseIntegrity(AppendIntegrity(nil, &m))
		if err != nil || got != m {
			t.Errorf("round trip %+v: %+v, %v", m, got, err)
		}
	}
}

func TestParseIntegrityLengths(t *testing.T) {
	for _, c := range []struct {
		kind byte
		n    int
	}{{IntegrityChallenge, IntegrityChallengeLen}, {IntegrityResponse, IntegrityResponseLen}} {
		b := make([]byte, IntegrityResponseLen+2)
		b[0] = c.kind
		for n := 1; n <= len(b); n++ {
			_, err := ParseIntegrity(b[:n])
			if n == c.n {
				if err != nil {
					t.Errorf("kind %d, %d bytes: %v", c.kind, n, err)
				}
			} else if !errors.Is(err, ErrLength) {
				t.Errorf("kind %d, %d bytes: error %v, want ErrLength", c.kind, n, err)
			}
		}
	}
	if _, err := ParseIntegrity(nil); !errors.Is(err, ErrLength) {
		t.Errorf("empty: %v", err)
	}
}

func TestParseIntegrityKinds(t *testing.T) {
	for _, k := range []byte{0, 3, 0x80, 0xff} {
		for _, n := range []int{1, IntegrityChallengeLen, IntegrityResponseLen} {
			b := make([]byte, n)
			b[0] = k
			if _, err := ParseIntegrity(b); !errors.Is(err, ErrMalformed) {
				t.Errorf("kind %d, %d bytes: error %v, want ErrMalformed", k, n, err)
			}
		}
	}
}

func TestParseIntegrityIgnoresReserved(t *testing.T) {
	for _, want := range []Integrity{{Kind: IntegrityChallenge, Nonce: fill32(7)},
		{Kind: IntegrityResponse, Epoch: 3, Nonce: fill32(7), Proof: fill32(8)}} {
		b := AppendIntegrity(nil, &want)
		for i := 1; i < 4; i++ {
			for _, m := range flipMasks {
				q := bytes.Clone(b)
				q[i] ^= m
				if got, err := ParseIntegrity(q); err != nil || got != want {
					t.Errorf("kind %d, byte %d ^ %#02x: %+v, %v", want.Kind, i, m, got, err)
				}
			}
		}
	}
}

func TestAppendIntegrityPanics(t *testing.T) {
	for _, k := range []uint8{0, 3, 255} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("AppendIntegrity(kind %d) did not panic", k)
				}
			}()
			AppendIntegrity(nil, &Integrity{Kind: k})
		}()
	}
}

func TestAppendIntegrityNoAlloc(t *testing.T) {
	buf := make([]byte, 0, 128)
	for _, m := range []Integrity{{Kind: IntegrityChallenge}, {Kind: IntegrityResponse}} {
		if n := testing.AllocsPerRun(100, func() { buf = AppendIntegrity(buf[:0], &m) }); n != 0 {
			t.Errorf("AppendIntegrity(kind %d) allocates %v times", m.Kind, n)
		}
	}
}

func TestIntegrityProof(t *testing.T) {
	key, sid, nonce := fill32(0x11), fill16(0x22), fill32(0x33)
	in := AppendIntegrityMACInput(nil, &sid, &nonce, RoleServer)
	if len(in) != IntegrityMACInputLen || string(in[:15]) != "pool1 integrity" || !bytes.Equal(in[15:31], sid[:]) ||
		in[31] != 0x02 || !bytes.Equal(in[32:], nonce[:]) {
		t.Fatalf("MAC input %x", in)
	}
	mac := hmac.New(sha256.New, key[:])
	mac.Write(in)
	proof := IntegrityProof(&key, &sid, &nonce, RoleServer)
	if !bytes.Equal(proof[:], mac.Sum(nil)) {
		t.Fatal("IntegrityProof is not HMAC-SHA256(key, MAC input)")
	}
	if !VerifyIntegrityProof(&key, &sid, &nonce, RoleServer, &proof) {
		t.Fatal("a correct proof does not verify")
	}
	// Every input matters: another key, SID, nonce or role, or one flipped
	// bit of the proof, fails.
	key2, sid2, nonce2 := key, sid, nonce
	key2[31] ^= 1
	sid2[0] ^= 0x80
	nonce2[16] ^= 4
	for name, ok := range map[string]bool{
		"key":   VerifyIntegrityProof(&key2, &sid, &nonce, RoleServer, &proof),
		"sid":   VerifyIntegrityProof(&key, &sid2, &nonce, RoleServer, &proof),
		"nonce": VerifyIntegrityProof(&key, &sid, &nonce2, RoleServer, &proof),
		"role":  VerifyIntegrityProof(&key, &sid, &nonce, RoleClient, &proof),
	} {
		if ok {
			t.Errorf("a proof verifies with another %s", name)
		}
	}
	for i := 0; i < IntegrityProofLen; i++ {
		bad := proof
		bad[i] ^= 1 << (i % 8)
		if VerifyIntegrityProof(&key, &sid, &nonce, RoleServer, &bad) || ProofEqual(&proof, &bad) {
			t.Fatalf("proof with byte %d flipped verifies", i)
		}
	}
	// A reflected challenge: the challenger's own answer is not the
	// responder's.
	mine := IntegrityProof(&key, &sid, &nonce, RoleClient)
	if ProofEqual(&mine, &proof) {
		t.Error("client and server proofs coincide")
	}
	if !ProofEqual(&proof, &proof) {
		t.Error("ProofEqual(x, x) is false")
	}
}

func FuzzParseIntegrity(f *testing.F) {
	f.Add(AppendIntegrity(nil, &Integrity{Kind: IntegrityChallenge, Nonce: fill32(1)}))
	f.Add(AppendIntegrity(nil, &Integrity{Kind: IntegrityResponse, Epoch: 1, Nonce: fill32(2), Proof: fill32(3)}))
	f.Add(append([]byte{2, 0xff, 0xff, 0xff}, make([]byte, 68)...))
	f.Add([]byte{1, 0, 0, 0})
	f.Add([]byte{3})
	f.Add(garbage(IntegrityResponseLen, 26))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseIntegrity(b)
		want := len(b) > 0 && (b[0] == 1 && len(b) == 36 || b[0] == 2 && len(b) == 72)
		if (err == nil) != want {
			t.Fatalf("ParseIntegrity(%x) error = %v, oracle accepts = %v", b, err, want)
		}
		if err != nil {
			checkSentinel(t, err)
			return
		}
		canon := bytes.Clone(b)
		canon[1], canon[2], canon[3] = 0, 0, 0
		if re := AppendIntegrity(nil, &m); !bytes.Equal(re, canon) {
			t.Fatalf("AppendIntegrity(ParseIntegrity(b))\n got  %x\n want %x", re, canon)
		}
	})
}
