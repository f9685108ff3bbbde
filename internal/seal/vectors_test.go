package seal

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

type trafficVector struct {
	Direction    string `json:"direction"`
	PlaintextHex string `json:"plaintext_hex"`
	Nonce        string `json:"nonce"`
	AD           string `json:"ad_hdr_0_48"`
	HMACInput    string `json:"hmac_input"`
	Packet       string `json:"packet"`
}

type keyVector struct{ Enc, HMAC, Seq string }

type golden struct {
	KeySchedule struct {
		Traffic map[string]keyVector `json:"traffic_keys_epoch0"`
	} `json:"key_schedule"`
	Traffic0 []trafficVector `json:"traffic_epoch0"`
	Rekey    struct {
		Traffic map[string]keyVector `json:"traffic_keys_epoch1"`
		Packets []trafficVector      `json:"traffic_epoch1"`
	} `json:"rekey"`
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadGolden(t *testing.T) golden {
	b, err := os.ReadFile("../../testdata/handshake-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func keysOf(t *testing.T, k keyVector) DirectionKeys {
	return DirectionKeys{Enc: [32]byte(unhex(t, k.Enc)), HMAC: [32]byte(unhex(t, k.HMAC)), Seq: [32]byte(unhex(t, k.Seq))}
}

// TestTrafficVectors seals each golden DATA packet from its header and
// plaintext and opens it back: nonce (P01), AD, HMAC coverage (§5.3) and
// per-direction keys must all match byte for byte.
func TestTrafficVectors(t *testing.T) {
	g := loadGolden(t)
	check := func(keys map[string]keyVector, vs []trafficVector) {
		for _, v := range vs {
			k := keysOf(t, keys[v.Direction])
			pkt := unhex(t, v.Packet)
			pt := unhex(t, v.PlaintextHex)
			if n := Nonce(k.HMAC[:], beUint64(pkt[4:12])); !bytes.Equal(n[:], unhex(t, v.Nonce)) {
				t.Errorf("%s nonce %x, want %s", v.Direction, n, v.Nonce)
			}
			if !bytes.Equal(pkt[:48], unhex(t, v.AD)) {
				t.Errorf("%s AD differs", v.Direction)
			}
			buf := make([]byte, 80+len(pt), 80+len(pt)+TagLen)
			copy(buf, pkt[:48])
			copy(buf[80:], pt)
			got := NewProtector(&k).Seal(buf)
			if !bytes.Equal(got, pkt) {
				t.Errorf("%s sealed\n got  %x\n want %x", v.Direction, got, pkt)
			}
			open, err := NewProtector(&k).Open(bytes.Clone(pkt))
			if err != nil || !bytes.Equal(open, pt) {
				t.Errorf("%s open: %q, %v", v.Direction, open, err)
			}
			// The other direction's keys must not open it.
			other := map[string]string{"c2s": "s2c", "s2c": "c2s"}[v.Direction]
			ok := keysOf(t, keys[other])
			if _, err := NewProtector(&ok).Open(bytes.Clone(pkt)); err == nil {
				t.Errorf("%s packet opened under %s keys", v.Direction, other)
			}
		}
	}
	check(g.KeySchedule.Traffic, g.Traffic0)
	check(g.Rekey.Traffic, g.Rekey.Packets)
	if len(g.Traffic0) != 2 || len(g.Rekey.Packets) != 2 {
		t.Fatalf("vector file has %d/%d traffic packets", len(g.Traffic0), len(g.Rekey.Packets))
	}
}

// TestOpenRejectsEveryBitFlip flips each bit of a sealed packet in turn:
// header, HMAC field, ciphertext and tag. Every variant must be refused.
func TestOpenRejectsEveryBitFlip(t *testing.T) {
	g := loadGolden(t)
	v := g.Traffic0[0]
	k := keysOf(t, g.KeySchedule.Traffic[v.Direction])
	p := NewProtector(&k)
	pkt := unhex(t, v.Packet)
	for i := 0; i < len(pkt)*8; i++ {
		b := bytes.Clone(pkt)
		b[i/8] ^= 1 << (i % 8)
		if pt, err := p.Open(b); err == nil {
			t.Fatalf("bit %d flipped: opened %q", i, pt)
		}
	}
}

// TestHMACCheckedAfterAEAD shows the HMAC is a real second check: a packet
// whose AEAD is valid but whose HMAC field was computed with another key is
// refused, and its plaintext is wiped, not returned.
func TestHMACCheckedAfterAEAD(t *testing.T) {
	k := DirectionKeys{Enc: [32]byte{1}, HMAC: [32]byte{2}}
	bad := DirectionKeys{Enc: [32]byte{1}, HMAC: [32]byte{2, 1}} // same prefix, other HMAC key
	pt := []byte("attack at dawn")
	buf := make([]byte, 80+len(pt), 200)
	buf[0] = 0x13
	buf[45] = byte(len(pt) + TagLen)
	copy(buf[80:], pt)
	pkt := NewProtector(&bad).Seal(buf)
	out, err := NewProtector(&k).Open(pkt)
	if err == nil {
		t.Fatalf("opened with wrong HMAC: %q", out)
	}
	if bytes.Contains(pkt, pt) {
		t.Fatal("unverified plaintext left in the buffer")
	}
}

func beUint64(b []byte) uint64 {
	var x uint64
	for _, c := range b[:8] {
		x = x<<8 | uint64(c)
	}
	return x
}

func TestSealAllocs(t *testing.T) {
	k := DirectionKeys{Enc: [32]byte{1}, HMAC: [32]byte{2}}
	s, o := NewProtector(&k), NewProtector(&k)
	buf := make([]byte, 80+1024, 80+1024+TagLen)
	buf[45] = 0x10
	buf[44] = 0x04
	allocs := testing.AllocsPerRun(100, func() {
		pkt := s.Seal(buf[:80+1024])
		if _, err := o.Open(pkt); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per seal+open, want 0", allocs)
	}
}

// TestIntegrityKeyVectors: K_int of epochs 0 and 1 (PROTOCOL.md §7.12) come
// out of DeriveEpoch as the session vectors give them.
func TestIntegrityKeyVectors(t *testing.T) {
	hs := readJSON(t, "../../testdata/handshake-v1.json")
	sv := readJSON(t, "../../testdata/session-v1.json")
	for _, c := range []struct{ master, want string }{
		{hs["key_schedule"].(map[string]any)["M0"].(string), sv["integrity"].(map[string]any)["key_epoch0"].(string)},
		{hs["rekey"].(map[string]any)["M1"].(string), sv["integrity"].(map[string]any)["key_epoch1"].(string)},
	} {
		m, _ := hex.DecodeString(c.master)
		k := DeriveEpoch((*[KeyLen]byte)(m))
		if got := hex.EncodeToString(k.Integrity[:]); got != c.want {
			t.Errorf("K_int = %s, want %s", got, c.want)
		}
	}
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}
