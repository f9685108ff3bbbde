package wire

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Fragmentation (PROTOCOL.md §7.11). A control message too large for the
// path MTU travels as several traffic packets of its own type, each with the
// FRAGMENT flag (and LAST_FRAG on the one that ends the message) and a
// plaintext of an 8-byte fragment header followed by a chunk of the message.
// Each fragment is sealed on its own, at its own sequence number.
const (
	FragHeaderLen = 8

	// MaxFragMessage bounds a fragmented message: 16 × MinMTU, so that one
	// whole message always fits in the reassembly memory of P04 (16 × MTU
	// per peer) even at the smallest MTU.
	MaxFragMessage = 16 * MinMTU // 8192

	// MinFragChunk is the least chunk every fragment but the last must
	// carry. A sender at MinMTU has 408 bytes per fragment, so this only
	// bounds a message to at most 32 fragments (a receiver tracks coverage
	// in a small fixed array) without constraining honest senders.
	MinFragChunk = 256

	// FragOverhead is what a fragment packet adds to its chunk: header,
	// fragment header, tag.
	FragOverhead = HeaderLen + FragHeaderLen + TagLen // 104

	// P04 limits, per peer (draft §15.4).
	FragSlots   = 16              // concurrent reassemblies; LRU eviction beyond
	FragTimeout = 5 * time.Second // from a slot's first fragment
	FragMemMTUs = 16              // held bytes ≤ 16 × max(MinMTU, current MTU)
)

// FlagsFragment and FlagsLastFragment are the flags words of a fragment.
const (
	FlagsFragment     = FlagEncrypted | FlagFragment
	FlagsLastFragment = FlagEncrypted | FlagFragment | FlagLastFrag
)

// Fragment is the fragment header: which message (MsgID, a per-sender,
// per-session counter), where this chunk starts in it (Offset) and the
// message's full length (Total, in every fragment).
type Fragment struct {
	MsgID  uint32
	Offset uint16
	Total  uint16
}

// AppendFragmentHeader appends BE32(msg_id) ‖ BE16(offset) ‖ BE16(total);
// the chunk follows. It does not allocate when dst has room.
func AppendFragmentHeader(dst []byte, f *Fragment) []byte {
	var b [FragHeaderLen]byte
	binary.BigEndian.PutUint32(b[0:4], f.MsgID)
	binary.BigEndian.PutUint16(b[4:6], f.Offset)
	binary.BigEndian.PutUint16(b[6:8], f.Total)
	return append(dst, b[:]...)
}

// FragmentFlags returns the flags word for a fragment of f carrying a chunk
// of n bytes: LAST_FRAG exactly when it reaches the end of the message.
func FragmentFlags(f *Fragment, n int) uint16 {
	if int(f.Offset)+n == int(f.Total) {
		return FlagsLastFragment
	}
	return FlagsFragment
}

// FragChunkSize is the largest chunk a fragment may carry on a path of the
// given MTU (POOL packet bytes): mtu − 104.
func FragChunkSize(mtu int) int { return mtu - FragOverhead }

// Fragmentable reports whether a packet type may be fragmented: the types
// whose single messages can exceed the MTU and cannot be split by their
// sender. DATA never is (a byte stream is segmented to the MTU instead); ACK
// window updates are split across ACKs; HEARTBEAT, REKEY, CLOSE and
// INTEGRITY are always smaller than MinMTU; a DISCOVER probe must arrive
// whole to mean anything, so of DISCOVER only the (future) peer exchange
// may be fragmented.
func Fragmentable(t Type) bool {
	switch t {
	case TypeConfig, TypeRollback, TypeDiscover, TypeJournal:
		return true
	}
	return false
}

// ParseFragment checks one fragment in isolation, given its header flags,
// and returns its header and chunk (aliasing p). The rules: FRAGMENT set;
// a non-empty chunk; 1 ≤ total ≤ MaxFragMessage; offset + len(chunk) ≤
// total; LAST_FRAG set exactly when offset + len(chunk) = total; every chunk
// but the last at least MinFragChunk bytes. What needs state (same total and
// type within a message, no overlap, the P04 limits) is the reassembler's.
func ParseFragment(flags uint16, p []byte) (Fragment, []byte, error) {
	var f Fragment
	if flags&FlagFragment == 0 {
		return f, nil, fmt.Errorf("%w: fragment without the FRAGMENT flag (flags %#04x)", ErrMalformed, flags)
	}
	if len(p) <= FragHeaderLen {
		return f, nil, fmt.Errorf("%w: fragment plaintext is %d bytes, want more than %d", ErrLength, len(p), FragHeaderLen)
	}
	f.MsgID = binary.BigEndian.Uint32(p[0:4])
	f.Offset = binary.BigEndian.Uint16(p[4:6])
	f.Total = binary.BigEndian.Uint16(p[6:8])
	chunk := p[FragHeaderLen:]
	end := int(f.Offset) + len(chunk)
	last := flags&FlagLastFrag != 0
	switch {
	case f.Total == 0 || f.Total > MaxFragMessage:
		return f, nil, fmt.Errorf("%w: fragmented message of %d bytes, want 1..%d", ErrMalformed, f.Total, MaxFragMessage)
	case end > int(f.Total):
		return f, nil, fmt.Errorf("%w: fragment [%d, %d) beyond the message's %d bytes", ErrMalformed, f.Offset, end, f.Total)
	case last != (end == int(f.Total)):
		return f, nil, fmt.Errorf("%w: LAST_FRAG is %v on a fragment ending at %d of %d", ErrMalformed, last, end, f.Total)
	case !last && len(chunk) < MinFragChunk:
		return f, nil, fmt.Errorf("%w: fragment chunk of %d bytes, at least %d unless last", ErrMalformed, len(chunk), MinFragChunk)
	}
	return f, chunk, nil
}
