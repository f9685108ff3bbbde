package addr

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// AllowList is the set of client keys a server accepts (DESIGN 2.2's
// authorized_peers, in the spirit of ssh's authorized_keys). Lookups are by
// the full canonical key, never by node ID or address, because a 64-bit node
// ID can be forged (handshake.md §3).
//
// A nil *AllowList allows nobody. An AllowList is not modified after
// parsing, so concurrent lookups are safe.
type AllowList struct {
	keys map[PublicKey]struct{}
}

// maxAllowListLine bounds one line; keys are 64 characters at most, the
// rest is comment.
const maxAllowListLine = 64 << 10

// NewAllowList builds an allow-list from keys held in memory.
func NewAllowList(keys ...PublicKey) *AllowList {
	l := &AllowList{keys: make(map[PublicKey]struct{}, len(keys))}
	for _, k := range keys {
		l.keys[k] = struct{}{}
	}
	return l
}

// LoadAllowList reads an allow-list file; see ParseAllowList for the format.
func LoadAllowList(path string) (*AllowList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read allow-list: %w", err)
	}
	defer f.Close()
	return ParseAllowList(f, path)
}

// ParseAllowList reads an allow-list from r; name (usually the file's path)
// prefixes error messages as "name:line: ...".
//
// Each line is blank, a comment starting with '#', or "KEY [comment...]"
// where KEY is a public key in base64 or hex (ParsePublicKey) and the comment
// is free text after whitespace. A listed key is the same key however it is
// spelt, so duplicates are harmless. A non-canonical key is an error, not
// skipped: it would alias a canonical one (handshake.md §3), and an operator
// who wrote it wants to know.
func ParseAllowList(r io.Reader, name string) (*AllowList, error) {
	l := &AllowList{keys: make(map[PublicKey]struct{})}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxAllowListLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// line is trimmed and non-empty, so it has a first field.
		k, err := ParsePublicKey(strings.Fields(line)[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		l.keys[k] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s:%d: line longer than %d bytes", name, n+1, maxAllowListLine)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return l, nil
}

// Allowed reports whether k is on the list.
func (l *AllowList) Allowed(k PublicKey) bool {
	if l == nil {
		return false
	}
	_, ok := l.keys[k]
	return ok
}

// Len returns the number of distinct keys on the list.
func (l *AllowList) Len() int {
	if l == nil {
		return 0
	}
	return len(l.keys)
}

// Keys returns the keys on the list in byte order, so that operators'
// views and diffs of it are stable.
func (l *AllowList) Keys() []PublicKey {
	if l == nil {
		return nil
	}
	keys := make([]PublicKey, 0, len(l.keys))
	for k := range l.keys {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b PublicKey) int { return bytes.Compare(a[:], b[:]) })
	return keys
}
