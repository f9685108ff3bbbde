package journal

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// On-disk format, version 1 (docs/JOURNAL.md describes it byte for byte).
//
//	file   = Magic record*
//	record = len:u32 hcrc:u32 body[len] bcrc:u32
//
// hcrc is CRC-32C of the 4 length bytes, bcrc CRC-32C of the body. All
// integers are big-endian.
//
//	body  off  size
//	      0    8    seq
//	      8    8    time_ns        (int64, wall clock, ns since the Unix epoch, UTC)
//	      16   8    first_ns       (int64, first occurrence; = time_ns unless aggregated)
//	      24   8    count          (≥ 1)
//	      32   8    config_before
//	      40   8    config_after
//	      48   2    type
//	      50   2    detail_len D
//	      52   D    detail         (canonical key/value encoding, see encodeDetail)
//	      52+D 32   prev_hash
//	      84+D 32   hash = SHA-256(HashDomain ‖ body[0 : 84+D])

// Magic is the 8-byte file header of a version-1 journal.
const Magic = "POOLJNL1"

// HashDomain prefixes every entry-hash input.
const HashDomain = "pool-journal-v1 entry\x00"

// Genesis is the prev_hash of the first entry and the head of an empty
// journal: SHA-256("pool-journal-v1 genesis").
var Genesis = sha256.Sum256([]byte("pool-journal-v1 genesis"))

// Limits of one entry.
const (
	MaxDetailBytes = 2048 // encoded detail, D
	MaxDetailKey   = 64   // bytes of one key
	MaxDetailValue = 1024 // bytes of one value

	fixedBody   = 52 + 32 + 32
	maxBody     = fixedBody + MaxDetailBytes
	recOverhead = 4 + 4 + 4 // len, hcrc, bcrc
	// MaxRecord is the largest record on disk.
	MaxRecord = maxBody + recOverhead
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Type is an entry's change type. Unknown values are kept as they are
// (a later version may add types); they print as "type(N)".
type Type uint16

// Change types. The numbers are on disk and never reused.
const (
	TypeConnect          Type = 1  // a session was established
	TypeDisconnect       Type = 2  // a session ended (CLOSE, error, timeout)
	TypeHandshakeFailure Type = 3  // a handshake was refused or failed
	TypeRekey            Type = 4  // a rekey completed or failed
	TypeConfig           Type = 5  // a configuration change (tentative, confirmed, rejected)
	TypeRollback         Type = 6  // a configuration rollback
	TypeError            Type = 7  // an error condition (draft §11), usually aggregated
	TypeIntegrity        Type = 8  // a self-test, INTEGRITY or replica divergence event
	TypeStart            Type = 9  // the node started
	TypeStop             Type = 10 // the node stopped cleanly
	TypeRecovery         Type = 11 // the journal repaired a torn last record on open
	TypeAlert            Type = 12 // an alert raised to the operator
	TypeState            Type = 13 // a session state change: path MTU, OVERLOAD start or end
)

var typeNames = map[Type]string{
	TypeConnect:          "connect",
	TypeDisconnect:       "disconnect",
	TypeHandshakeFailure: "handshake_failure",
	TypeRekey:            "rekey",
	TypeConfig:           "config",
	TypeRollback:         "rollback",
	TypeError:            "error",
	TypeIntegrity:        "integrity",
	TypeStart:            "start",
	TypeStop:             "stop",
	TypeRecovery:         "recovery",
	TypeAlert:            "alert",
	TypeState:            "state",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// MarshalText gives the text name.
func (t Type) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText accepts what ParseType accepts.
func (t *Type) UnmarshalText(b []byte) error {
	v, err := ParseType(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// ParseType parses a text name ("rekey"), or "type(N)" / a decimal number.
func ParseType(s string) (Type, error) {
	for t, n := range typeNames {
		if n == s {
			return t, nil
		}
	}
	num := strings.TrimSuffix(strings.TrimPrefix(s, "type("), ")")
	if v, err := strconv.ParseUint(num, 10, 16); err == nil && v != 0 {
		return Type(v), nil
	}
	return 0, fmt.Errorf("journal: unknown entry type %q", s)
}

// Types lists the known types in numeric order.
func Types() []Type {
	ts := make([]Type, 0, len(typeNames))
	for t := range typeNames {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

// Entry is one journal entry. The caller of Append fills in Type, Detail
// and the config versions; the journal assigns Seq, Time, First, Count,
// Prev and Hash.
type Entry struct {
	Seq          uint64
	Time         time.Time // when the entry was written (UTC)
	First        time.Time // first occurrence; equals Time unless aggregated
	Count        uint64    // occurrences this entry stands for (≥ 1)
	ConfigBefore uint64
	ConfigAfter  uint64
	Type         Type
	Detail       map[string]string
	Prev         [32]byte // hash of the previous entry (Genesis for the first)
	Hash         [32]byte // this entry's hash: the chain head after it
	Offset       int64    // byte offset of its record in the file (set by readers)
}

// Session is Detail["session"], the field readers filter sessions by.
func (e *Entry) Session() string { return e.Detail["session"] }

func validKey(k string) bool {
	if len(k) == 0 || len(k) > MaxDetailKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// ErrDetail reports a detail map that cannot be stored.
var ErrDetail = errors.New("journal: invalid detail")

// appendDetail appends the canonical encoding of d: for each key in
// ascending byte order, klen:u8 key vlen:u16 value. Keys are 1–64 bytes of
// [a-z0-9_.-], values valid UTF-8 of at most 1024 bytes, the whole at most
// MaxDetailBytes.
func appendDetail(b []byte, d map[string]string) ([]byte, error) {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	start := len(b)
	for _, k := range keys {
		v := d[k]
		if !validKey(k) {
			return nil, fmt.Errorf("%w: key %q", ErrDetail, k)
		}
		if len(v) > MaxDetailValue || !utf8.ValidString(v) {
			return nil, fmt.Errorf("%w: value of %q (%d bytes; at most %d of UTF-8)", ErrDetail, k, len(v), MaxDetailValue)
		}
		b = append(b, byte(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
		b = append(b, v...)
		if len(b)-start > MaxDetailBytes {
			return nil, fmt.Errorf("%w: more than %d bytes encoded", ErrDetail, MaxDetailBytes)
		}
	}
	return b, nil
}

func parseDetail(b []byte) (map[string]string, error) {
	var d map[string]string
	prev := ""
	for len(b) > 0 {
		kl := int(b[0])
		if len(b) < 1+kl+2 {
			return nil, errors.New("detail truncated")
		}
		k := string(b[1 : 1+kl])
		vl := int(binary.BigEndian.Uint16(b[1+kl:]))
		b = b[1+kl+2:]
		if len(b) < vl {
			return nil, errors.New("detail truncated")
		}
		v := string(b[:vl])
		b = b[vl:]
		if !validKey(k) || len(v) > MaxDetailValue || !utf8.ValidString(v) {
			return nil, fmt.Errorf("detail key %q or its value invalid", k)
		}
		if d != nil && k <= prev {
			return nil, errors.New("detail keys not in strictly ascending order")
		}
		if d == nil {
			d = make(map[string]string)
		}
		d[k] = v
		prev = k
	}
	return d, nil
}

// entryHash computes SHA-256(HashDomain ‖ pre), pre = body[0:84+D].
func entryHash(pre []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(HashDomain))
	h.Write(pre)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// appendRecord encodes e (whose Seq, Time, First, Count, Prev are set) as
// one record appended to b, computing e.Hash.
func appendRecord(b []byte, e *Entry) ([]byte, error) {
	if e.Count == 0 {
		return nil, errors.New("journal: count 0")
	}
	start := len(b)
	b = append(b, make([]byte, 8)...) // len, hcrc: filled in below
	body := len(b)
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(e.First.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, e.Count)
	b = binary.BigEndian.AppendUint64(b, e.ConfigBefore)
	b = binary.BigEndian.AppendUint64(b, e.ConfigAfter)
	b = binary.BigEndian.AppendUint16(b, uint16(e.Type))
	b = append(b, 0, 0) // detail_len
	var err error
	b, err = appendDetail(b, e.Detail)
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint16(b[body+50:], uint16(len(b)-body-52))
	b = append(b, e.Prev[:]...)
	e.Hash = entryHash(b[body:])
	b = append(b, e.Hash[:]...)
	n := len(b) - body
	binary.BigEndian.PutUint32(b[start:], uint32(n))
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(b[start:start+4], castagnoli))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b[body:], castagnoli))
	return b, nil
}

// parseBody decodes a body whose CRC has been checked and verifies its hash.
func parseBody(body []byte) (Entry, error) {
	var e Entry
	if len(body) < fixedBody {
		return e, errors.New("body too short")
	}
	dl := int(binary.BigEndian.Uint16(body[50:]))
	if len(body) != fixedBody+dl {
		return e, fmt.Errorf("body length %d does not match detail length %d", len(body), dl)
	}
	e.Seq = binary.BigEndian.Uint64(body)
	e.Time = time.Unix(0, int64(binary.BigEndian.Uint64(body[8:]))).UTC()
	e.First = time.Unix(0, int64(binary.BigEndian.Uint64(body[16:]))).UTC()
	e.Count = binary.BigEndian.Uint64(body[24:])
	e.ConfigBefore = binary.BigEndian.Uint64(body[32:])
	e.ConfigAfter = binary.BigEndian.Uint64(body[40:])
	e.Type = Type(binary.BigEndian.Uint16(body[48:]))
	d, err := parseDetail(body[52 : 52+dl])
	if err != nil {
		return e, err
	}
	e.Detail = d
	copy(e.Prev[:], body[52+dl:])
	copy(e.Hash[:], body[84+dl:])
	if e.Count == 0 {
		return e, errors.New("count 0")
	}
	if e.Type == 0 {
		return e, errors.New("type 0")
	}
	if entryHash(body[:84+dl]) != e.Hash {
		return e, errors.New("entry hash does not match its contents")
	}
	return e, nil
}
