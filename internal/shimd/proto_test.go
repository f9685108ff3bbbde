package shimd

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/pool-go/pool/internal/testutil"
)

// TestVectors: every request and response of testdata/shim-v1.json decodes
// to its stated value and re-encodes to its bytes; every bad request is
// refused; docs/PROTOCOL.md quotes the vectors.
func TestVectors(t *testing.T) {
	v := testutil.LoadVectors(t, "../../testdata/shim-v1.json")
	doc, err := os.ReadFile("../../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	compact := strings.Join(strings.Fields(string(doc)), "")
	for _, r := range v.Get(t, "requests").([]any) {
		m := r.(map[string]any)
		b := mustHex(t, m["bytes"].(string))
		got, err := DecodeRequest(b)
		if err != nil {
			t.Fatalf("%s: %v", m["name"], err)
		}
		want := netip.MustParseAddrPort(m["destination"].(string))
		if got != want {
			t.Errorf("%s: decoded %v, want %v", m["name"], got, want)
		}
		enc, err := EncodeRequest(want)
		if err != nil {
			t.Fatal(err)
		}
		if m["name"] != "ipv4-mapped" && !bytes.Equal(enc[:], b) {
			t.Errorf("%s: encoded %x, want %x", m["name"], enc, b)
		}
		if !strings.Contains(compact, m["bytes"].(string)) {
			t.Errorf("PROTOCOL.md does not quote request %s = %s", m["name"], m["bytes"])
		}
	}
	for _, r := range v.Get(t, "bad_requests").([]any) {
		m := r.(map[string]any)
		if dst, err := DecodeRequest(mustHex(t, m["bytes"].(string))); err == nil {
			t.Errorf("bad request %s decoded to %v", m["name"], dst)
		}
	}
	for _, r := range v.Get(t, "responses").([]any) {
		m := r.(map[string]any)
		b := mustHex(t, m["bytes"].(string))
		st, n, err := DecodeResponseHeader(b[:ResponseLen])
		if err != nil {
			t.Fatalf("%s: %v", m["name"], err)
		}
		if fmt.Sprint(uint8(st)) != fmt.Sprint(m["status"]) || string(b[ResponseLen:]) != m["reason"] || n != len(b)-ResponseLen {
			t.Errorf("%s: decoded status %d, reason %q (%d)", m["name"], st, b[ResponseLen:], n)
		}
		if enc := EncodeResponse(st, m["reason"].(string)); !bytes.Equal(enc, b) {
			t.Errorf("%s: encoded %x, want %x", m["name"], enc, b)
		}
		if !strings.Contains(compact, m["bytes"].(string)) {
			t.Errorf("PROTOCOL.md does not quote response %s = %s", m["name"], m["bytes"])
		}
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestResponseReasonBounded: a long or invalid reason still gives a
// response whose length byte is right and whose reason is UTF-8.
func TestResponseReasonBounded(t *testing.T) {
	long := strings.Repeat("é", 200) + "\xff"
	b := EncodeResponse(StatusFailed, long)
	st, n, err := DecodeResponseHeader(b[:ResponseLen])
	if err != nil || st != StatusFailed {
		t.Fatal(st, err)
	}
	if n != len(b)-ResponseLen || n > MaxReason {
		t.Fatalf("reason length byte %d, reason %d bytes", n, len(b)-ResponseLen)
	}
	if !strings.HasPrefix(long, string(b[ResponseLen:])) || !isUTF8(b[ResponseLen:]) {
		t.Errorf("reason %q is not a UTF-8 prefix of the given one", b[ResponseLen:])
	}
	if _, _, err := DecodeResponseHeader(append([]byte{}, EncodeResponse(6, "")...)); err == nil {
		t.Error("status 6 accepted")
	}
	if _, err := EncodeRequest(netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), 0)); err == nil {
		t.Error("port 0 encoded")
	}
}

func isUTF8(b []byte) bool { return strings.ToValidUTF8(string(b), "?") == string(b) }

// FuzzDecodeRequest: any input either decodes to a destination that
// re-encodes to an equivalent request, or is refused; never a panic.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		"5053484d010418ebc000020a000000000000000000000000",
		"5053484d010601bb20010db8000000000000000000000001",
		"5053484d0106005000000000000000000000ffffc000020a",
		"5053484d010518ebc000020a000000000000000000000000",
	} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		dst, err := DecodeRequest(b)
		if err != nil {
			return
		}
		if len(b) != RequestLen || dst.Port() == 0 || !dst.Addr().IsValid() || dst.Addr().Is4In6() {
			t.Fatalf("accepted %x as %v", b, dst)
		}
		enc, err := EncodeRequest(dst)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeRequest(enc[:])
		if err != nil || back != dst {
			t.Fatalf("%v re-encoded as %x decodes to %v, %v", dst, enc, back, err)
		}
		if b[5] == family4 && !bytes.Equal(enc[:], b) {
			t.Fatalf("IPv4 request %x re-encoded as %x", b, enc)
		}
	})
}

// FuzzDecodeResponseHeader: never a panic; an accepted header re-encodes.
func FuzzDecodeResponseHeader(f *testing.F) {
	f.Add(EncodeResponse(StatusConnected, ""))
	f.Add(EncodeResponse(StatusNoRoute, "x")[:ResponseLen])
	f.Fuzz(func(t *testing.T, b []byte) {
		st, n, err := DecodeResponseHeader(b)
		if err != nil {
			return
		}
		if st > StatusFailed || n > MaxReason {
			t.Fatalf("accepted %x: status %d, reason %d", b, st, n)
		}
		if enc := EncodeResponse(st, strings.Repeat("a", n)); !bytes.Equal(enc[:ResponseLen], b) {
			t.Fatalf("%x re-encodes as %x", b, enc[:ResponseLen])
		}
	})
}
