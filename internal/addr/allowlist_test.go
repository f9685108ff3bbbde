package addr

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseAllowList(t *testing.T) {
	bob := keyFromHex(t, bobPublicHex)
	alice := keyFromHex(t, alicePublicHex)
	bit255 := bob
	bit255[31] |= 0x80
	p := leKey(0xed, 0xff, 0x7f)
	tests := []struct {
		name     string
		in       string
		wantLen  int
		allowed  []PublicKey
		denied   []PublicKey
		wantErr  string // exact prefix of the error
		contains string
		nonCan   bool
	}{
		{name: "empty", in: "", wantLen: 0, denied: []PublicKey{bob, {}}},
		{name: "comments and blanks only", in: "# header\n\n   \n\t# indented\n", wantLen: 0, denied: []PublicKey{bob}},
		{
			name:    "both forms, comments",
			in:      "# authorized_peers\n" + bobPublicBase64 + " bob laptop\n\n" + alicePublicHex + "\talice # desk\n",
			wantLen: 2, allowed: []PublicKey{bob, alice}, denied: []PublicKey{{}, bit255},
		},
		{
			name:    "duplicates in every spelling",
			in:      bobPublicBase64 + "\n" + bobPublicHex + "\n" + bobPublicHexUpper + " again\n  " + bobPublicBase64 + "  \n",
			wantLen: 1, allowed: []PublicKey{bob}, denied: []PublicKey{alice},
		},
		{name: "CRLF", in: "# x\r\n" + bobPublicBase64 + "\r\n", wantLen: 1, allowed: []PublicKey{bob}},
		{name: "no final newline", in: alicePublicHex, wantLen: 1, allowed: []PublicKey{alice}},
		{
			name:     "not a key on line 3",
			in:       "# peers\n" + bobPublicBase64 + "\nssh-ed25519 AAAA bob\n",
			wantErr:  "authorized_peers:3: not a public key: ",
			contains: `"ssh-ed25519" has 11 characters`,
		},
		{name: "bad base64", in: "!" + bobPublicBase64[1:] + "\n", wantErr: "authorized_peers:1: not a public key: ", contains: "not valid base64"},
		{name: "bad hex", in: "\n\n\n" + "zz" + bobPublicHex[2:], wantErr: "authorized_peers:4: not a public key: ", contains: "not valid hex"},
		{name: "key glued to comment", in: bobPublicBase64 + "#bob\n", wantErr: "authorized_peers:1: not a public key: ", contains: "has 48 characters"},
		{name: "non-canonical bit 255", in: bobPublicBase64 + "\n" + bit255.String() + " alias\n", wantErr: "authorized_peers:2: non-canonical public key: bit 255", nonCan: true},
		{name: "non-canonical p", in: hex.EncodeToString(p[:]), wantErr: "authorized_peers:1: non-canonical public key: u-coordinate", nonCan: true},
		{name: "line too long", in: bobPublicBase64 + "\n" + bobPublicBase64 + " " + strings.Repeat("c", maxAllowListLine) + "\n", wantErr: "authorized_peers:2: line longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ParseAllowList(strings.NewReader(tt.in), "authorized_peers")
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseAllowList succeeded with %d keys, want error %q", l.Len(), tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.contains) {
					t.Fatalf("error = %q, want prefix %q containing %q", err, tt.wantErr, tt.contains)
				}
				if errors.Is(err, ErrNonCanonical) != tt.nonCan {
					t.Errorf("errors.Is(err, ErrNonCanonical) = %v, want %v", !tt.nonCan, tt.nonCan)
				}
				if l != nil {
					t.Error("non-nil list on error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Len() != tt.wantLen {
				t.Errorf("Len() = %d, want %d", l.Len(), tt.wantLen)
			}
			for _, k := range tt.allowed {
				if !l.Allowed(k) {
					t.Errorf("Allowed(%s) = false", k)
				}
			}
			for _, k := range tt.denied {
				if l.Allowed(k) {
					t.Errorf("Allowed(%s) = true", k)
				}
			}
		})
	}
}

func TestParseAllowListReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := ParseAllowList(iotest.ErrReader(boom), "peers")
	if err == nil || err.Error() != "peers: boom" || !errors.Is(err, boom) {
		t.Fatalf("error = %v, want %q wrapping the read error", err, "peers: boom")
	}
}

func TestNilAllowList(t *testing.T) {
	var l *AllowList
	if l.Allowed(PublicKey{}) || l.Allowed(keyFromHex(t, bobPublicHex)) {
		t.Error("nil AllowList allowed a key; it must allow nobody")
	}
	if l.Len() != 0 {
		t.Errorf("nil Len() = %d", l.Len())
	}
}

func TestLoadAllowList(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "authorized_peers")
	writeFile(t, path, "# peers\n"+bobPublicBase64+" bob\n", 0o644)
	l, err := LoadAllowList(path)
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != 1 || !l.Allowed(keyFromHex(t, bobPublicHex)) {
		t.Errorf("loaded list: Len %d, Bob allowed %v", l.Len(), l.Allowed(keyFromHex(t, bobPublicHex)))
	}

	bad := filepath.Join(dir, "bad")
	writeFile(t, bad, "\nnonsense\n", 0o644)
	if _, err := LoadAllowList(bad); err == nil || !strings.HasPrefix(err.Error(), bad+":2: not a public key: ") {
		t.Errorf("error = %v, want it to start with %q", err, bad+":2: not a public key: ")
	}

	missing := filepath.Join(dir, "missing")
	_, err = LoadAllowList(missing)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("error = %v, want a not-exist error naming %s", err, missing)
	}
	if _, err := LoadAllowList(dir); err == nil {
		t.Error("LoadAllowList of a directory succeeded")
	}
}

// TestAllowListRefusesAddresses: an address pasted where a key belongs is
// named as such, since an address cannot authenticate a peer.
func TestAllowListRefusesAddresses(t *testing.T) {
	id, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	_, err = ParseAllowList(strings.NewReader(New(id.Public, 0, 0).String()+"\n"), "peers")
	if err == nil || !strings.Contains(err.Error(), "is a POOL address") || !strings.Contains(err.Error(), "peers:1:") {
		t.Fatalf("error = %v", err)
	}
}

func TestAllowListKeysSorted(t *testing.T) {
	var keys []PublicKey
	for i := 0; i < 5; i++ {
		id, _ := Generate()
		keys = append(keys, id.Public)
	}
	got := NewAllowList(append(keys, keys[0])...).Keys()
	if len(got) != 5 {
		t.Fatalf("%d keys, want 5", len(got))
	}
	for i := 1; i < len(got); i++ {
		if bytes.Compare(got[i-1][:], got[i][:]) >= 0 {
			t.Fatalf("keys not in byte order: %v", got)
		}
	}
	if (*AllowList)(nil).Keys() != nil {
		t.Error("nil list has keys")
	}
}
