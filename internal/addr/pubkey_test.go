package addr

import (
	"crypto/ecdh"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// RFC 7748 §6.1 test keys.
const (
	bobPublicHex      = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
	bobPublicBase64   = "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08="
	bobPrivateHex     = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
	bobNodeIDHex      = "f35e5616160a30bf"
	alicePrivateHex   = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
	alicePublicHex    = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
	sharedSecretHex   = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
	bobPublicHexUpper = "DE9EDB7D7B7DC1B4D35B61C2ECE435373F8343C85B78674DADFC7E146F882B4F"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

func keyFromHex(t testing.TB, s string) PublicKey {
	t.Helper()
	var k PublicKey
	if n := copy(k[:], mustHex(t, s)); n != 32 {
		t.Fatalf("test key %q has %d bytes", s, n)
	}
	return k
}

// leKey builds a key from a little-endian byte pattern: low is byte 0, mid
// fills bytes 1-30, high is byte 31.
func leKey(low, mid, high byte) PublicKey {
	var k PublicKey
	k[0] = low
	for i := 1; i < 31; i++ {
		k[i] = mid
	}
	k[31] = high
	return k
}

func TestPublicKeyString(t *testing.T) {
	k := keyFromHex(t, bobPublicHex)
	if got := k.String(); got != bobPublicBase64 {
		t.Errorf("String() = %q, want %q", got, bobPublicBase64)
	}
	if n := len(PublicKey{}.String()); n != 44 {
		t.Errorf("len(String()) = %d, want 44", n)
	}
}

func TestPublicKeyCanonical(t *testing.T) {
	tests := []struct {
		name string
		key  PublicKey
		want bool
	}{
		// The all-zero key is a canonical encoding (of a low-order point);
		// crypto/ecdh refuses the all-zero DH output it yields.
		{"all zero", PublicKey{}, true},
		{"p-1 = 2^255-20", leKey(0xec, 0xff, 0x7f), true},
		{"p = 2^255-19", leKey(0xed, 0xff, 0x7f), false},
		{"p+1", leKey(0xee, 0xff, 0x7f), false},
		{"2^255-1", leKey(0xff, 0xff, 0x7f), false},
		{"bit 255 only", leKey(0x00, 0x00, 0x80), false},
		{"all ones (bit 255 set, >= p)", leKey(0xff, 0xff, 0xff), false},
		{"top byte 0x7f, lower bytes small", leKey(0x00, 0x00, 0x7f), true},
		{"top byte 0x7f, one middle byte below 0xff", func() PublicKey { k := leKey(0xff, 0xff, 0x7f); k[15] = 0xfe; return k }(), true},
		{"RFC 7748 Bob", keyFromHex(t, bobPublicHex), true},
		{"RFC 7748 Bob with bit 255 set", func() PublicKey { k := keyFromHex(t, bobPublicHex); k[31] |= 0x80; return k }(), false},
		{"one (little-endian)", leKey(0x01, 0x00, 0x00), true},
		// Read big-endian, this would be 1 << 248, i.e. canonical either
		// way; the next case tells the two readings apart.
		{"byte 0 = 0x80", leKey(0x80, 0x00, 0x00), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.key.Canonical(); got != tt.want {
				t.Errorf("Canonical(%x) = %v, want %v", tt.key[:], got, tt.want)
			}
			err := tt.key.canonicalError()
			if tt.want != (err == nil) {
				t.Errorf("canonicalError() = %v, want error %v", err, !tt.want)
			}
			if err != nil && !errors.Is(err, ErrNonCanonical) {
				t.Errorf("canonicalError() = %v, does not wrap ErrNonCanonical", err)
			}
		})
	}
}

// TestByteOrderIsLittleEndian pins the reading of handshake.md §8.1: a key
// whose byte 0 is 0xff and byte 31 is 0x00 is small (canonical) when read
// little-endian, while the mirrored key is 2^255-1 (non-canonical).
func TestByteOrderIsLittleEndian(t *testing.T) {
	small := leKey(0xff, 0x00, 0x00)
	if !small.Canonical() {
		t.Error("ff 00..00 should be canonical (u = 255)")
	}
	var mirrored PublicKey
	for i := range mirrored {
		mirrored[i] = 0xff
	}
	mirrored[0] = 0x7f // big-endian reading of 2^255-1; little-endian it has bit 255 set
	if mirrored.Canonical() {
		t.Error("7f ff..ff should be non-canonical (bit 255 set when read little-endian)")
	}
}

// TestAliasingIsReal documents why Canonical exists: crypto/ecdh accepts a
// key with bit 255 set and computes the same shared secret as for the
// canonical key, so the two encodings are one identity. If this test starts
// failing because Go rejects such keys, the comments on Canonical are stale.
func TestAliasingIsReal(t *testing.T) {
	priv, err := ecdh.X25519().NewPrivateKey(mustHex(t, alicePrivateHex))
	if err != nil {
		t.Fatal(err)
	}
	bob := keyFromHex(t, bobPublicHex)
	alias := bob
	alias[31] |= 0x80
	var secrets [][]byte
	for _, k := range []PublicKey{bob, alias} {
		pub, err := ecdh.X25519().NewPublicKey(k[:])
		if err != nil {
			t.Fatalf("crypto/ecdh rejected %x: %v", k[:], err)
		}
		s, err := priv.ECDH(pub)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, s)
	}
	if hex.EncodeToString(secrets[0]) != sharedSecretHex {
		t.Errorf("shared secret = %x, want RFC 7748 %s", secrets[0], sharedSecretHex)
	}
	if string(secrets[0]) != string(secrets[1]) {
		t.Error("aliased encodings gave different shared secrets; crypto/ecdh behaviour changed")
	}
	if bob.NodeID() == alias.NodeID() {
		t.Error("aliases share a node ID; the aliasing argument in handshake.md §3 no longer applies")
	}
	// The all-zero key passes Canonical; crypto/ecdh catches it at DH time.
	zero, err := ecdh.X25519().NewPublicKey(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := priv.ECDH(zero); err == nil {
		t.Error("crypto/ecdh accepted the all-zero DH output of a low-order point")
	}
}

func TestPublicKeyNodeID(t *testing.T) {
	tests := []struct {
		keyHex, want string
	}{
		{bobPublicHex, bobNodeIDHex},
		// SHA-256 of 32 zero bytes is 66687aadf862bd77...
		{strings.Repeat("00", 32), "66687aadf862bd77"},
	}
	for _, tt := range tests {
		id := keyFromHex(t, tt.keyHex).NodeID()
		if got := hex.EncodeToString(id[:]); got != tt.want {
			t.Errorf("NodeID(%s) = %s, want %s", tt.keyHex, got, tt.want)
		}
	}
}

func TestParsePublicKey(t *testing.T) {
	bob := keyFromHex(t, bobPublicHex)
	pHex := hex.EncodeToString(func() []byte { k := leKey(0xed, 0xff, 0x7f); return k[:] }())
	bit255 := bob
	bit255[31] |= 0x80
	tests := []struct {
		name    string
		in      string
		want    PublicKey
		wantErr string // substring; "" means success
		nonCan  bool   // error must wrap ErrNonCanonical
	}{
		{name: "base64", in: bobPublicBase64, want: bob},
		{name: "base64 with spaces", in: " \t" + bobPublicBase64 + "\n", want: bob},
		{name: "hex lower", in: bobPublicHex, want: bob},
		{name: "hex upper", in: bobPublicHexUpper, want: bob},
		{name: "hex with spaces", in: "  " + bobPublicHex + "\r\n", want: bob},
		{name: "all-zero key", in: strings.Repeat("A", 43) + "=", want: PublicKey{}},
		{name: "empty", in: "", wantErr: "not a public key: \"\" has 0 characters; want 44 base64 characters or 64 hex digits"},
		{name: "spaces only", in: "   ", wantErr: "has 0 characters"},
		{name: "base64 unpadded", in: strings.TrimSuffix(bobPublicBase64, "="), wantErr: "has 43 characters"},
		{name: "base64 extra char", in: bobPublicBase64 + "A", wantErr: "has 45 characters"},
		{name: "hex too short", in: bobPublicHex[:62], wantErr: "has 62 characters"},
		{name: "hex too long", in: bobPublicHex + "00", wantErr: "has 66 characters"},
		{name: "hex 0x prefix", in: "0x" + bobPublicHex, wantErr: "has 66 characters"},
		{name: "bad base64 char", in: "!" + bobPublicBase64[1:], wantErr: "is not valid base64"},
		{name: "url-safe base64", in: strings.NewReplacer("+", "-", "/", "_").Replace(bobPublicBase64), wantErr: "is not valid base64"},
		// The last data character's 2 unused bits must be zero: '8' -> '9'.
		{name: "base64 non-zero padding bits", in: bobPublicBase64[:42] + "9=", wantErr: "is not valid base64"},
		{name: "base64 44 chars no padding", in: bobPublicBase64[:43] + "A", wantErr: "decodes to 33 bytes, want 32"},
		{name: "bad hex digit", in: "g" + bobPublicHex[1:], wantErr: "is not valid hex"},
		{name: "inner space", in: bobPublicHex[:31] + " " + bobPublicHex[32:], wantErr: "is not valid hex"},
		{name: "p (non-canonical)", in: pHex, wantErr: "non-canonical public key: u-coordinate", nonCan: true},
		{name: "bit 255 set hex", in: hex.EncodeToString(bit255[:]), wantErr: "non-canonical public key: bit 255", nonCan: true},
		{name: "bit 255 set base64", in: bit255.String(), wantErr: "non-canonical public key: bit 255", nonCan: true},
		{name: "long input is shortened", in: strings.Repeat("x", 1000), wantErr: `"... has 1000 characters`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePublicKey(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParsePublicKey(%q) error: %v", tt.in, err)
				}
				if got != tt.want {
					t.Fatalf("ParsePublicKey(%q) = %x, want %x", tt.in, got[:], tt.want[:])
				}
				return
			}
			if err == nil {
				t.Fatalf("ParsePublicKey(%q) = %x, want error containing %q", tt.in, got[:], tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
			}
			if errors.Is(err, ErrNonCanonical) != tt.nonCan {
				t.Errorf("errors.Is(err, ErrNonCanonical) = %v, want %v", !tt.nonCan, tt.nonCan)
			}
			if got != (PublicKey{}) {
				t.Errorf("failed parse returned non-zero key %x", got[:])
			}
			if len(err.Error()) > 300 {
				t.Errorf("error message is %d bytes long; input should be shortened", len(err.Error()))
			}
		})
	}
}

func TestPublicKeyRoundTrip(t *testing.T) {
	for range 100 {
		id, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		k := id.Public
		for _, s := range []string{k.String(), hex.EncodeToString(k[:])} {
			got, err := ParsePublicKey(s)
			if err != nil || got != k {
				t.Fatalf("ParsePublicKey(%q) = %x, %v; want %x", s, got[:], err, k[:])
			}
		}
	}
}
