package addr

import (
	"encoding/hex"
	"strings"
	"testing"
)

// FuzzParseAddress checks that ParseAddress never panics and that whatever it
// accepts is valid and round-trips through String to the same input, up to
// case and surrounding whitespace (one address, one text form).
// Seeds are also committed under testdata/fuzz/FuzzParseAddress (DESIGN 6).
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		goldenBobAddress,
		goldenBobAddressOrgSubnet,
		strings.ToUpper(goldenBobAddress),
		" " + goldenBobAddress + "\n",
		"pool:00000000-0000000000000000-0000000000000000-0000000000000000-00000000",
		"pool:00010001-0000000000000000-0000000000000000-f35e5616160a30bf-8073e157",
		"pool:00020001-0000000000000000-0000000000000000-f35e5616160a30bf-8073e156",
		"pool:----",
		"pool:",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			if a != (Address{}) {
				t.Fatalf("error %v with non-zero address", err)
			}
			return
		}
		if err := a.Valid(); err != nil {
			t.Fatalf("ParseAddress(%q) accepted an invalid address: %v", s, err)
		}
		text := a.String()
		if !strings.EqualFold(text, strings.TrimSpace(s)) {
			t.Fatalf("ParseAddress(%q) = %s: not the same text", s, text)
		}
		b, err := ParseAddress(text)
		if err != nil || b != a {
			t.Fatalf("round trip of %s: %x, %v", text, b[:], err)
		}
	})
}

// FuzzParsePublicKey checks that ParsePublicKey never panics and that every
// key it accepts is canonical and is what the input spelt.
func FuzzParsePublicKey(f *testing.F) {
	for _, s := range []string{
		bobPublicBase64,
		bobPublicHex,
		bobPublicHexUpper,
		" " + bobPublicBase64 + "\t",
		bobPublicBase64[:42] + "9=",
		"7f" + strings.Repeat("ff", 30) + "ed",
		strings.Repeat("ff", 31) + "7f",
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		strings.Repeat("A", 43) + "=",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParsePublicKey(s)
		if err != nil {
			if k != (PublicKey{}) {
				t.Fatalf("error %v with non-zero key", err)
			}
			return
		}
		if !k.Canonical() {
			t.Fatalf("ParsePublicKey(%q) accepted non-canonical %x", s, k[:])
		}
		in := strings.TrimSpace(s)
		if in != k.String() && !strings.EqualFold(in, hex.EncodeToString(k[:])) {
			t.Fatalf("ParsePublicKey(%q) = %x, which neither spelling matches", s, k[:])
		}
		if b, err := ParsePublicKey(k.String()); err != nil || b != k {
			t.Fatalf("round trip of %s: %x, %v", k, b[:], err)
		}
	})
}
