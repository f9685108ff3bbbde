package bridge

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

type preambleVectors struct {
	Requests []struct {
		Name, Target, Hex string
	}
	Replies []struct {
		Status int
		Name   string
		Hex    string
	}
	InvalidRequests []struct {
		Why, Hex string
		Status   int
	} `json:"invalid_requests"`
}

func loadPreambleVectors(t *testing.T) preambleVectors {
	t.Helper()
	raw, err := os.ReadFile("../../testdata/bridge-preamble-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var v preambleVectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Requests) == 0 || len(v.Replies) == 0 || len(v.InvalidRequests) == 0 {
		t.Fatal("vector file has an empty section")
	}
	return v
}

// TestPreambleVectors checks every vector of testdata/bridge-preamble-v1.json
// both ways: encoding gives the bytes, decoding gives the value back, and
// ReadRequest consumes exactly the request and nothing after it.
func TestPreambleVectors(t *testing.T) {
	v := loadPreambleVectors(t)
	for _, r := range v.Requests {
		want, _ := hex.DecodeString(r.Hex)
		var tg Target
		if r.Target != "" {
			var err error
			if tg, err = ParseTarget(r.Target); err != nil {
				t.Fatalf("%s: %v", r.Name, err)
			}
		}
		got, err := AppendRequest(nil, tg)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: encoded %x, %v; want %s", r.Name, got, err, r.Hex)
		}
		dec, n, err := ParseRequest(append(want, 0xAA, 0xBB))
		if err != nil || n != len(want) || dec != tg {
			t.Errorf("%s: decoded %+v (%d bytes), %v; want %+v (%d)", r.Name, dec, n, err, tg, len(want))
		}
		for i := 0; i < len(want); i++ {
			if _, _, err := ParseRequest(want[:i]); err != ErrShortRequest {
				t.Errorf("%s: prefix of %d bytes: %v, want ErrShortRequest", r.Name, i, err)
			}
		}
		rd := bytes.NewReader(append(want, 'x'))
		if dec, err := ReadRequest(rd); err != nil || dec != tg || rd.Len() != 1 {
			t.Errorf("%s: ReadRequest %+v, %v, %d bytes left; want 1 left", r.Name, dec, err, rd.Len())
		}
	}
	for _, r := range v.Replies {
		want, _ := hex.DecodeString(r.Hex)
		if got := AppendReply(nil, Status(r.Status)); !bytes.Equal(got, want) {
			t.Errorf("reply %s: %x, want %s", r.Name, got, r.Hex)
		}
		if st, err := ParseReply(want); err != nil || st != Status(r.Status) {
			t.Errorf("reply %s: parsed %v, %v", r.Name, st, err)
		}
		if Status(r.Status).String() == "" || bytes.Contains([]byte(Status(r.Status).String()), []byte("unknown")) {
			t.Errorf("status %d has no text", r.Status)
		}
	}
	for _, r := range v.InvalidRequests {
		b, _ := hex.DecodeString(r.Hex)
		_, _, err := ParseRequest(b)
		want := ErrMalformed
		if Status(r.Status) == StatusVersion {
			want = ErrBadVersion
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: ParseRequest: %v, want %v", r.Why, err, want)
		}
		if _, err := ReadRequest(bytes.NewReader(b)); !errors.Is(err, want) {
			t.Errorf("%s: ReadRequest: %v, want %v", r.Why, err, want)
		}
	}
}

func TestParseTarget(t *testing.T) {
	for _, bad := range []string{"", "host", "host:0", "host:70000", ":80", "::1:80", "-a.b:80", "a..b:80", "a b:80", "[fe80::1%eth0]:80"} {
		if _, err := ParseTarget(bad); err == nil {
			t.Errorf("ParseTarget(%q) accepted", bad)
		}
	}
	tg, err := ParseTarget("DB.Internal:5432")
	if err != nil || tg.Host != "db.internal" || tg.Port != 5432 {
		t.Fatalf("%+v %v", tg, err)
	}
	tg, err = ParseTarget("[::ffff:10.0.0.1]:80")
	if err != nil || !tg.Addr.Is4() {
		t.Fatalf("mapped address not unmapped: %+v %v", tg, err)
	}
}

// TestReadRequestTruncated: a channel that ends inside a request is a
// malformed request, not a hang or a partial target.
func TestReadRequestTruncated(t *testing.T) {
	full, _ := AppendRequest(nil, Target{Host: "example.org", Port: 80})
	for i := 1; i < len(full); i++ {
		if _, err := ReadRequest(bytes.NewReader(full[:i])); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d of %d bytes: %v", i, len(full), err)
		}
	}
}

// FuzzParseRequest: any input either decodes to a request that re-encodes
// to exactly the bytes read, or is refused; ReadRequest agrees with
// ParseRequest and never reads past the request.
func FuzzParseRequest(f *testing.F) {
	v := preambleVectorsForFuzz()
	for _, s := range v {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tg, n, err := ParseRequest(b)
		rd := bytes.NewReader(b)
		rt, rerr := ReadRequest(rd)
		if err == nil {
			if n > MaxRequestLen || n > len(b) {
				t.Fatalf("length %d", n)
			}
			enc, eerr := AppendRequest(nil, tg)
			if eerr != nil || !bytes.Equal(enc, b[:n]) {
				t.Fatalf("re-encoded %x (%v), read %x", enc, eerr, b[:n])
			}
			if rerr != nil || rt != tg || len(b)-rd.Len() != n {
				t.Fatalf("ReadRequest %+v %v consumed %d, ParseRequest %+v %d", rt, rerr, len(b)-rd.Len(), tg, n)
			}
			return
		}
		if rerr == nil {
			t.Fatalf("ReadRequest accepted %x that ParseRequest refused (%v)", b, err)
		}
	})
}

func preambleVectorsForFuzz() [][]byte {
	raw, err := os.ReadFile("../../testdata/bridge-preamble-v1.json")
	if err != nil {
		return nil
	}
	var v preambleVectors
	_ = json.Unmarshal(raw, &v)
	var out [][]byte
	for _, r := range v.Requests {
		b, _ := hex.DecodeString(r.Hex)
		out = append(out, b)
	}
	for _, r := range v.InvalidRequests {
		b, _ := hex.DecodeString(r.Hex)
		out = append(out, b)
	}
	return out
}

// TestProtocolDocBridgeSection: docs/PROTOCOL.md §14 states the preamble
// as the code speaks it: every status row, the limits, and the quoted
// vectors.
func TestProtocolDocBridgeSection(t *testing.T) {
	raw, err := os.ReadFile("../../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i := strings.Index(doc, "## 14. The bridge preamble")
	if i < 0 {
		t.Fatal("PROTOCOL.md has no §14 for the bridge preamble")
	}
	doc = doc[i:]
	v := loadPreambleVectors(t)
	for _, r := range v.Replies {
		row := fmt.Sprintf("| `0x%02x` | %s |", r.Status, r.Name)
		if !strings.Contains(doc, row) {
			t.Errorf("§14.3 lacks the row %q", row)
		}
	}
	if n := strings.Count(doc, "\n| `0x"); n != len(v.Replies) {
		t.Errorf("§14.3 has %d status rows, the vectors %d", n, len(v.Replies))
	}
	def, _ := AppendRequest(nil, Target{})
	ip, _ := AppendRequest(nil, Target{Addr: netip.MustParseAddr("192.0.2.7"), Port: 5432})
	for _, q := range []struct {
		quote string
		ok    bool
	}{
		{"**258 bytes**", MaxRequestLen == 258},
		{"1–253", MaxHostLen == 253},
		{"**10 s**, `bridge.DefaultRequestTimeout`", DefaultRequestTimeout == 10*time.Second},
		{"10 s, `bridge.DefaultDialTimeout`", DefaultDialTimeout == 10*time.Second},
		{"plus 5 s, 15 s", DefaultConnectTimeout == 15*time.Second},
		{"connection limit (this implementation: 4096)", DefaultMaxConns == 4096},
		{"code `0x80`", CodeAbort == 0x80},
		{"`" + hex.EncodeToString(ip) + "`", true},
		{"`" + hex.EncodeToString(def) + "`", true},
		{"`" + hex.EncodeToString(AppendReply(nil, StatusRefused)) + "`", true},
		{"nine requests a decoder must refuse", len(v.InvalidRequests) == 9},
	} {
		if !strings.Contains(doc, q.quote) {
			t.Errorf("§14 lacks %q", q.quote)
		} else if !q.ok {
			t.Errorf("§14 states %q, but the code differs", q.quote)
		}
	}
}
