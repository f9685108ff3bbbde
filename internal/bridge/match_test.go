package bridge

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/pool-go/pool"
)

func TestPatternMatch(t *testing.T) {
	cases := []struct {
		pattern string
		target  string
		want    bool
	}{
		{"10.0.0.0/8:80,443", "10.1.2.3:443", true},
		{"10.0.0.0/8:80,443", "10.1.2.3:8080", false},
		{"10.0.0.0/8:80,443", "11.0.0.1:80", false},
		{"192.0.2.7:5432", "192.0.2.7:5432", true},
		{"192.0.2.7:5432", "192.0.2.8:5432", false},
		{"192.0.2.7:8000-8100", "192.0.2.7:8050", true},
		{"192.0.2.7:8000-8100", "192.0.2.7:8101", false},
		{"[2001:db8::/32]:*", "[2001:db8::5]:22", true},
		{"[2001:db8::/32]:*", "[2001:db9::5]:22", false},
		{"0.0.0.0/0:*", "[::ffff:1.2.3.4]:9", true},
		{"db.internal:5432", "db.internal:5432", true},
		{"db.internal:5432", "DB.internal:5432", true},
		{"db.internal:5432", "10.0.0.1:5432", false},
		{"10.0.0.1:5432", "db.internal:5432", false},
	}
	for _, c := range cases {
		p, err := ParsePattern(c.pattern)
		if err != nil {
			t.Fatalf("%s: %v", c.pattern, err)
		}
		tg, err := ParseTarget(c.target)
		if err != nil {
			t.Fatalf("%s: %v", c.target, err)
		}
		if got := p.Match(tg); got != c.want {
			t.Errorf("%s matches %s: %v, want %v", c.pattern, c.target, got, c.want)
		}
		if q, err := ParsePattern(p.String()); err != nil || q.String() != p.String() {
			t.Errorf("%s prints as %s, which reads back as %v, %v", c.pattern, p, q, err)
		}
	}
	for _, bad := range []string{"10.0.0.0/8", "10.0.0.0/33:80", "::1:80", "host:0", "host:90-80", "host:x", "a_b:80", "[::ffff:0:0/96]:80"} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("ParsePattern(%q) accepted", bad)
		}
	}
}

func TestParseRoutes(t *testing.T) {
	id, _ := pool.GenerateIdentity()
	k := id.Public.String()
	text := "# routes\n10.0.0.0/8:80,443 " + k + " gw.example:9253 web\n\n[2001:db8::/32]:* " + k + " [2001:db8::1]:9253 # v6\n"
	rs, err := ParseRoutes(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Name != "web" || rs[1].Address != "[2001:db8::1]:9253" || rs[0].Peer != id.Public {
		t.Fatalf("%+v", rs)
	}
	if !rs[1].Match.Match(TargetFromAddrPort(netip.MustParseAddrPort("[2001:db8::9]:1"))) {
		t.Fatal("route 2 does not match")
	}
	for _, bad := range []string{"10.0.0.0/8:80 " + k, "10.0.0.0/8:80 notakey host", "nonsense " + k + " host"} {
		if _, err := ParseRoutes(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestNewServerNeedsPolicy(t *testing.T) {
	if _, err := NewServer(ServerConfig{}); err == nil {
		t.Fatal("a server that can reach nothing was accepted")
	}
	var se *StatusError = &StatusError{Status: StatusRefused}
	if !errors.As(error(se), &se) || !strings.Contains(se.Error(), "refused") {
		t.Fatal(se.Error())
	}
}
