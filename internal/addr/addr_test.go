package addr

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// Golden text of New(RFC 7748 Bob, org 0, subnet 0); the same vector is in
// testdata/address-v1.json for other implementations (DESIGN 6).
const goldenBobAddress = "pool:00010001-0000000000000000-0000000000000000-f35e5616160a30bf-8073e156"

// A second vector with non-zero org and subnet pins their byte order.
const goldenBobAddressOrgSubnet = "pool:00010001-0102030405060708-1112131415161718-f35e5616160a30bf-bc7dda23"

func TestGoldenAddress(t *testing.T) {
	bob := keyFromHex(t, bobPublicHex)
	tests := []struct {
		org, subnet uint64
		want        string
	}{
		{0, 0, goldenBobAddress},
		{0x0102030405060708, 0x1112131415161718, goldenBobAddressOrgSubnet},
	}
	for _, tt := range tests {
		a := New(bob, tt.org, tt.subnet)
		if got := a.String(); got != tt.want {
			t.Errorf("New(Bob, %#x, %#x).String() = %s, want %s", tt.org, tt.subnet, got, tt.want)
		}
		// Independent construction of the 28 checksummed bytes, straight
		// from DESIGN 2.10 rather than through New.
		body := []byte{0x00, 0x01, 0x00, 0x01}
		body = binary.BigEndian.AppendUint64(body, tt.org)
		body = binary.BigEndian.AppendUint64(body, tt.subnet)
		body = append(body, mustHex(t, bobNodeIDHex)...)
		groups := strings.Split(strings.TrimPrefix(tt.want, "pool:"), "-")
		if groups[3] != bobNodeIDHex {
			t.Errorf("node ID group = %s, want %s", groups[3], bobNodeIDHex)
		}
		if want := fmt.Sprintf("%08x", crc32.ChecksumIEEE(body)); groups[4] != want {
			t.Errorf("checksum group = %s, independent CRC-32/IEEE = %s", groups[4], want)
		}
		if got := hex.EncodeToString(a[:28]); got != hex.EncodeToString(body) {
			t.Errorf("address bytes 0-27 = %s, want %x", got, body)
		}
		parsed, err := ParseAddress(tt.want)
		if err != nil || parsed != a {
			t.Errorf("ParseAddress(%s) = %x, %v; want %x", tt.want, parsed[:], err, a[:])
		}
	}
}

// TestAddressVectorFile checks the vector published for other
// implementations against this one.
func TestAddressVectorFile(t *testing.T) {
	data, err := os.ReadFile("../../testdata/address-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		PublicKeyHex string  `json:"public_key_hex"`
		Org          *uint64 `json:"org"`
		Subnet       *uint64 `json:"subnet"`
		AddressHex   string  `json:"address_hex"`
		AddressText  string  `json:"address_text"`
		NodeIDHex    string  `json:"node_id_hex"`
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("address-v1.json: %v", err)
	}
	if v.PublicKeyHex == "" || v.Org == nil || v.Subnet == nil || v.AddressHex == "" || v.AddressText == "" || v.NodeIDHex == "" {
		t.Fatalf("address-v1.json is missing a field: %+v", v)
	}
	pub, err := ParsePublicKey(v.PublicKeyHex)
	if err != nil {
		t.Fatal(err)
	}
	a := New(pub, *v.Org, *v.Subnet)
	if got := hex.EncodeToString(a[:]); got != v.AddressHex {
		t.Errorf("address_hex: got %s, file has %s", got, v.AddressHex)
	}
	if got := a.String(); got != v.AddressText {
		t.Errorf("address_text: got %s, file has %s", got, v.AddressText)
	}
	if id := pub.NodeID(); hex.EncodeToString(id[:]) != v.NodeIDHex {
		t.Errorf("node_id_hex: got %x, file has %s", id[:], v.NodeIDHex)
	}
	if v.AddressText != goldenBobAddress {
		t.Errorf("address_text %s differs from the golden constant %s", v.AddressText, goldenBobAddress)
	}
	parsed, err := ParseAddress(v.AddressText)
	if err != nil || parsed != a {
		t.Errorf("ParseAddress(address_text) = %x, %v", parsed[:], err)
	}
}

func TestAddressAccessors(t *testing.T) {
	bob := keyFromHex(t, bobPublicHex)
	tests := []struct{ org, subnet uint64 }{
		{0, 0},
		{1, 2},
		{0x0102030405060708, 0x1112131415161718},
		{^uint64(0), ^uint64(0)},
	}
	for _, tt := range tests {
		a := New(bob, tt.org, tt.subnet)
		if a.Type() != TypeNode || a.Version() != Version1 {
			t.Errorf("Type/Version = %#x/%#x", a.Type(), a.Version())
		}
		if a.Org() != tt.org || a.Subnet() != tt.subnet {
			t.Errorf("Org/Subnet = %#x/%#x, want %#x/%#x", a.Org(), a.Subnet(), tt.org, tt.subnet)
		}
		if a.NodeID() != bob.NodeID() {
			t.Errorf("NodeID = %x, want %x", a.NodeID(), bob.NodeID())
		}
		if a.Checksum() != crc32.ChecksumIEEE(a[:28]) {
			t.Errorf("Checksum = %08x, want %08x", a.Checksum(), crc32.ChecksumIEEE(a[:28]))
		}
		if err := a.Valid(); err != nil {
			t.Errorf("Valid() = %v", err)
		}
	}
}

// withHeader returns a copy of a with type and version replaced and the
// checksum recomputed (fix) or left stale.
func withHeader(a Address, typ, ver uint16, fix bool) Address {
	binary.BigEndian.PutUint16(a[0:2], typ)
	binary.BigEndian.PutUint16(a[2:4], ver)
	if fix {
		binary.BigEndian.PutUint32(a[28:32], crc32.ChecksumIEEE(a[:28]))
	}
	return a
}

func TestAddressValid(t *testing.T) {
	good := New(keyFromHex(t, bobPublicHex), 7, 9)
	flipped := good
	flipped[25] ^= 0x10
	badCRC := good
	badCRC[31] ^= 0x01
	tests := []struct {
		name      string
		a         Address
		wantErr   string
		sentinels []error
		notIs     []error
	}{
		{name: "valid", a: good},
		{name: "zero address", a: Address{}, wantErr: "unknown address type 0x0000 (known: 0x0001); checksum mismatch", sentinels: []error{ErrUnknownType, ErrChecksum}},
		{name: "flipped node ID bit", a: flipped, wantErr: "checksum mismatch: address mistyped?", sentinels: []error{ErrChecksum}, notIs: []error{ErrUnknownType, ErrUnknownVersion}},
		{name: "flipped checksum bit", a: badCRC, wantErr: "checksum mismatch", sentinels: []error{ErrChecksum}},
		{name: "unknown type, good CRC", a: withHeader(good, 2, 1, true), wantErr: "unknown address type 0x0002", sentinels: []error{ErrUnknownType}, notIs: []error{ErrChecksum, ErrUnknownVersion}},
		{name: "unknown version, good CRC", a: withHeader(good, 1, 2, true), wantErr: "unknown address format version 0x0002", sentinels: []error{ErrUnknownVersion}, notIs: []error{ErrChecksum, ErrUnknownType}},
		{name: "unknown version, bad CRC", a: withHeader(good, 1, 0x0101, false), wantErr: "version 0x0101 (known: 0x0001); checksum mismatch", sentinels: []error{ErrUnknownVersion, ErrChecksum}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.a.Valid()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Valid() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Valid() = %v, want error containing %q", err, tt.wantErr)
			}
			for _, s := range tt.sentinels {
				if !errors.Is(err, s) {
					t.Errorf("error %q does not wrap %q", err, s)
				}
			}
			for _, s := range tt.notIs {
				if errors.Is(err, s) {
					t.Errorf("error %q wraps %q, should not", err, s)
				}
			}
		})
	}
}

func TestAddressMatches(t *testing.T) {
	bob := keyFromHex(t, bobPublicHex)
	alice := keyFromHex(t, alicePublicHex)
	tests := []struct {
		name string
		a    Address
		pub  PublicKey
		want bool
	}{
		{"own key", New(bob, 0, 0), bob, true},
		// org and subnet are not bound to the key (handshake.md §3): any
		// org/subnet matches as long as the node ID does.
		{"own key, other org/subnet", New(bob, 42, 43), bob, true},
		{"other key", New(bob, 0, 0), alice, false},
		{"non-canonical alias of own key", New(bob, 0, 0), func() PublicKey { k := bob; k[31] |= 0x80; return k }(), false},
		{"zero address", Address{}, bob, false},
	}
	for _, tt := range tests {
		if got := tt.a.Matches(tt.pub); got != tt.want {
			t.Errorf("%s: Matches = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestAddressString(t *testing.T) {
	tests := []struct {
		a    Address
		want string
	}{
		{Address{}, "pool:00000000-0000000000000000-0000000000000000-0000000000000000-00000000"},
		{func() Address {
			var a Address
			for i := range a {
				a[i] = byte(0xa0 + i%16)
			}
			return a
		}(), "pool:a0a1a2a3-a4a5a6a7a8a9aaab-acadaeafa0a1a2a3-a4a5a6a7a8a9aaab-acadaeaf"},
	}
	for _, tt := range tests {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("String() = %s, want %s", got, tt.want)
		}
	}
}

func TestParseAddressRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		var pub PublicKey
		for j := range pub {
			pub[j] = byte(r.Uint32())
		}
		a := New(pub, r.Uint64(), r.Uint64())
		s := a.String()
		if len(s) != 73 {
			t.Fatalf("len(%s) = %d, want 73", s, len(s))
		}
		for _, in := range []string{s, strings.ToUpper(s), " \t" + s + "\r\n", strings.ToUpper(s[:5]) + s[5:]} {
			got, err := ParseAddress(in)
			if err != nil {
				t.Fatalf("#%d ParseAddress(%q): %v", i, in, err)
			}
			if got != a {
				t.Fatalf("#%d ParseAddress(%q) = %x, want %x", i, in, got[:], a[:])
			}
		}
	}
}

func TestParseAddressErrors(t *testing.T) {
	g := goldenBobAddress
	groups := strings.Split(strings.TrimPrefix(g, "pool:"), "-")
	join := func(gs ...string) string { return "pool:" + strings.Join(gs, "-") }
	replaceGroup := func(i int, s string) string {
		gs := append([]string(nil), groups...)
		gs[i] = s
		return join(gs...)
	}
	good := New(keyFromHex(t, bobPublicHex), 0, 0)
	tests := []struct {
		name     string
		in       string
		wantErr  string
		sentinel error
	}{
		{name: "empty", in: "", wantErr: `must start with "pool:"`},
		{name: "no prefix", in: strings.TrimPrefix(g, "pool:"), wantErr: `must start with "pool:"`},
		{name: "wrong prefix", in: "pol:" + g[5:], wantErr: `must start with "pool:"`},
		{name: "prefix without colon", in: "pool" + g[5:], wantErr: `must start with "pool:"`},
		{name: "prefix only", in: "pool:", wantErr: "has 1 '-'-separated groups, want 5 (8-16-16-16-8 hex digits)"},
		{name: "4 groups", in: join(groups[:4]...), wantErr: "has 4 '-'-separated groups, want 5"},
		{name: "6 groups", in: g + "-00", wantErr: "has more than 5 '-'-separated groups, want 5"},
		{name: "many dashes", in: "pool:" + strings.Repeat("-", 10000), wantErr: "has more than 5"},
		{name: "no separators", in: strings.ReplaceAll(g, "-", ""), wantErr: "has 1 '-'-separated groups"},
		{name: "underscore separators", in: strings.ReplaceAll(g, "-", "_"), wantErr: "has 1 '-'-separated groups"},
		{name: "group 1 short", in: replaceGroup(0, "0001001"), wantErr: "group 1 (type+version) has 7 characters, want 8"},
		{name: "group 2 long", in: replaceGroup(1, groups[1]+"0"), wantErr: "group 2 (org) has 17 characters, want 16"},
		{name: "group 3 empty", in: replaceGroup(2, ""), wantErr: "group 3 (subnet) has 0 characters, want 16"},
		{name: "group 4 short", in: replaceGroup(3, groups[3][1:]), wantErr: "group 4 (node ID) has 15 characters, want 16"},
		{name: "group 5 long", in: replaceGroup(4, groups[4]+"f"), wantErr: "group 5 (checksum) has 9 characters, want 8"},
		{name: "groups 2 and 3 swapped lengths", in: join(groups[0], groups[1]+"00", groups[2][2:], groups[3], groups[4]), wantErr: "group 2 (org) has 18 characters"},
		{name: "bad hex digit g", in: replaceGroup(3, "g"+groups[3][1:]), wantErr: "group 4 (node ID) has bad hex digit 'g' at position 1"},
		{name: "bad hex digit in checksum", in: replaceGroup(4, groups[4][:7]+"z"), wantErr: "group 5 (checksum) has bad hex digit 'z' at position 8"},
		{name: "letter O for zero", in: replaceGroup(1, "O"+groups[1][1:]), wantErr: "group 2 (org) has bad hex digit 'O' at position 1"},
		{name: "inner space", in: replaceGroup(2, groups[2][:5]+" "+groups[2][6:]), wantErr: "group 3 (subnet) has bad hex digit ' ' at position 6"},
		{name: "0x in group", in: replaceGroup(0, "0x010001"), wantErr: "bad hex digit 'x' at position 2"},
		{name: "non-ASCII", in: replaceGroup(0, "0001000é"), wantErr: "group 1 (type+version) has 9 characters"},
		{name: "non-ASCII same byte length", in: replaceGroup(0, "000100é"), wantErr: "bad hex digit 'é' at position 7"},
		{name: "checksum mismatch", in: replaceGroup(4, "8073e157"), wantErr: "checksum mismatch: address mistyped?", sentinel: ErrChecksum},
		{name: "mistyped node ID", in: replaceGroup(3, "f35e5616160a30bE"), wantErr: "checksum mismatch: address mistyped?", sentinel: ErrChecksum},
		{name: "unknown type", in: withHeader(good, 2, 1, true).String(), wantErr: "unknown address type 0x0002", sentinel: ErrUnknownType},
		{name: "unknown version", in: withHeader(good, 1, 9, true).String(), wantErr: "unknown address format version 0x0009", sentinel: ErrUnknownVersion},
		{name: "typo in type digits", in: replaceGroup(0, "00110001"), wantErr: "unknown address type 0x0011 (known: 0x0001); checksum mismatch: address mistyped?", sentinel: ErrChecksum},
		{name: "base64 public key instead", in: bobPublicBase64, wantErr: `must start with "pool:"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAddress(tt.in)
			if err == nil {
				t.Fatalf("ParseAddress(%q) = %s, want error", tt.in, a)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "invalid POOL address ") {
				t.Errorf("error = %q, want prefix %q", err, "invalid POOL address ")
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("error %q does not wrap %q", err, tt.sentinel)
			}
			if a != (Address{}) {
				t.Errorf("failed parse returned non-zero address %x", a[:])
			}
			if len(err.Error()) > 400 {
				t.Errorf("error message is %d bytes long; input should be shortened", len(err.Error()))
			}
		})
	}
}

// hexPositions returns the indexes of the hex digits of an address text.
func hexPositions(s string) []int {
	var pos []int
	for i := len("pool:"); i < len(s); i++ {
		if s[i] != '-' {
			pos = append(pos, i)
		}
	}
	return pos
}

// TestParseAddressSingleSubstitution checks DESIGN 2.10's "checksum caught on
// typos" for every single-character substitution: each of the 64 hex digits
// replaced by each of the 15 other hex values (in either case) and by a few
// look-alike non-hex characters.
func TestParseAddressSingleSubstitution(t *testing.T) {
	for _, s := range []string{goldenBobAddress, goldenBobAddressOrgSubnet} {
		pos := hexPositions(s)
		if len(pos) != 64 {
			t.Fatalf("%d hex positions, want 64", len(pos))
		}
		tried := 0
		for _, i := range pos {
			for _, c := range "0123456789abcdefABCDEFOolIg " {
				if strings.EqualFold(string(c), s[i:i+1]) {
					continue // same digit, not a substitution
				}
				typo := s[:i] + string(c) + s[i+1:]
				if a, err := ParseAddress(typo); err == nil {
					t.Errorf("substitution at %d (%q -> %q) accepted: %s parsed as %x", i, s[i], c, typo, a[:])
				}
				tried++
			}
		}
		if tried < 64*15 {
			t.Fatalf("tried only %d substitutions", tried)
		}
	}
}

// TestParseAddressAdjacentTransposition swaps every pair of neighbouring,
// differing hex digits, including pairs that a '-' separates.
func TestParseAddressAdjacentTransposition(t *testing.T) {
	for _, s := range []string{goldenBobAddress, goldenBobAddressOrgSubnet} {
		pos := hexPositions(s)
		tried := 0
		for k := 0; k+1 < len(pos); k++ {
			i, j := pos[k], pos[k+1]
			if s[i] == s[j] {
				continue
			}
			b := []byte(s)
			b[i], b[j] = b[j], b[i]
			if a, err := ParseAddress(string(b)); err == nil {
				t.Errorf("transposition of positions %d,%d accepted: %s parsed as %x", i, j, b, a[:])
			}
			tried++
		}
		if tried < 20 {
			t.Fatalf("tried only %d transpositions", tried)
		}
	}
	// The swap from the brief, spelled out: "30bf" -> "03bf" in the node ID.
	typo := strings.Replace(goldenBobAddress, "160a30bf", "160a03bf", 1)
	if _, err := ParseAddress(typo); !errors.Is(err, ErrChecksum) {
		t.Errorf("ParseAddress(%s) error = %v, want ErrChecksum", typo, err)
	}
}
