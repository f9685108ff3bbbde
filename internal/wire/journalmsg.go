package wire

import (
	"encoding/binary"
	"fmt"
)

// JOURNAL message kinds (PROTOCOL.md §7.16): a checkpoint of the sender's
// change-journal chain head, and a run of its entry hashes, from which a
// peer keeps a replica of the chain.
const (
	JournalKindCheckpoint = 1
	JournalKindHashes     = 2
)

// JournalCheckpointLen is a CHECKPOINT's plaintext: u8(kind) ‖ 3 zero
// bytes ‖ BE64(seq) ‖ head[32], 44 bytes. It always fits one packet: it is never fragmented.
const JournalCheckpointLen = 1 + 3 + 8 + 32

// JournalCheckpoint says that the sender's journal chain head after entry
// Seq is Head (internal/journal, Journal.Head).
type JournalCheckpoint struct {
	Seq  uint64
	Head [32]byte
}

// AppendJournalCheckpoint appends the 44-byte CHECKPOINT plaintext. It
// does not allocate when dst has room.
func AppendJournalCheckpoint(dst []byte, c *JournalCheckpoint) []byte {
	var b [JournalCheckpointLen]byte
	b[0] = JournalKindCheckpoint
	binary.BigEndian.PutUint64(b[4:12], c.Seq)
	copy(b[12:], c.Head[:])
	return append(dst, b[:]...)
}

// ParseJournalCheckpoint decodes a JOURNAL plaintext that must be a
// CHECKPOINT: exactly 44 bytes, kind 1, bytes 1-3 zero. Any other kind
// is ErrMalformed (the receiver ignores it: later kinds, §7.16).
func ParseJournalCheckpoint(p []byte) (JournalCheckpoint, error) {
	var c JournalCheckpoint
	switch {
	case len(p) == 0:
		return c, fmt.Errorf("%w: empty JOURNAL plaintext", ErrLength)
	case p[0] != JournalKindCheckpoint:
		return c, fmt.Errorf("%w: JOURNAL kind %d", ErrMalformed, p[0])
	case len(p) != JournalCheckpointLen:
		return c, fmt.Errorf("%w: JOURNAL checkpoint is %d bytes, want %d", ErrLength, len(p), JournalCheckpointLen)
	case p[1]|p[2]|p[3] != 0:
		return c, fmt.Errorf("%w: JOURNAL checkpoint bytes 1-3 are %x", ErrReserved, p[1:4])
	}
	c.Seq = binary.BigEndian.Uint64(p[4:12])
	copy(c.Head[:], p[12:])
	return c, nil
}

// JOURNAL HASHES (PROTOCOL.md §7.16): u8(kind = 2) ‖ u8(flags) ‖ BE16(n) ‖
// BE64(first) ‖ prev[32] ‖ n hashes of 32 bytes. prev is the hash of
// entry first−1 (journal.Genesis when first is 1), so a receiver can link
// the run to what it holds.
const (
	JournalHashesHeaderLen = 1 + 1 + 2 + 8 + 32
	// JournalMaxHashes keeps a HASHES message within MaxFragMessage (254 hashes, 8172 bytes).
	JournalMaxHashes = (MaxFragMessage - JournalHashesHeaderLen) / 32
	// JournalHashesStart (flags bit 0) marks the first HASHES a session
	// carries: its last hash is the sender's chain head when it was sent,
	// so a receiver can tell a journal that became shorter (§7.16).
	JournalHashesStart = 0x01
)

// JournalHashes is a run of the sender's journal entry hashes: Hashes[i]
// is the hash of entry First+i; Prev that of entry First−1.
type JournalHashes struct {
	Start  bool
	First  uint64
	Prev   [32]byte
	Hashes [][32]byte
}

// AppendJournalHashes appends the HASHES plaintext; h must hold 1 to
// JournalMaxHashes hashes and First must be at least 1.
func AppendJournalHashes(dst []byte, h *JournalHashes) []byte {
	var flags byte
	if h.Start {
		flags = JournalHashesStart
	}
	dst = append(dst, JournalKindHashes, flags)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(h.Hashes)))
	dst = binary.BigEndian.AppendUint64(dst, h.First)
	dst = append(dst, h.Prev[:]...)
	for i := range h.Hashes {
		dst = append(dst, h.Hashes[i][:]...)
	}
	return dst
}

// ParseJournalHashes decodes a HASHES plaintext: kind 2, flag bits other
// than START zero, 1 to JournalMaxHashes hashes, exactly 44 + 32n bytes,
// first at least 1 and the run not past 2^64 − 1.
func ParseJournalHashes(p []byte) (JournalHashes, error) {
	var h JournalHashes
	switch {
	case len(p) < JournalHashesHeaderLen:
		return h, fmt.Errorf("%w: JOURNAL hashes of %d bytes", ErrLength, len(p))
	case p[0] != JournalKindHashes:
		return h, fmt.Errorf("%w: JOURNAL kind %d", ErrMalformed, p[0])
	case p[1]&^JournalHashesStart != 0:
		return h, fmt.Errorf("%w: JOURNAL hashes flags %#02x", ErrReserved, p[1])
	}
	n := int(binary.BigEndian.Uint16(p[2:4]))
	h.First = binary.BigEndian.Uint64(p[4:12])
	switch {
	case n == 0 || n > JournalMaxHashes:
		return h, fmt.Errorf("%w: JOURNAL hashes count %d (1 to %d)", ErrMalformed, n, JournalMaxHashes)
	case len(p) != JournalHashesHeaderLen+32*n:
		return h, fmt.Errorf("%w: JOURNAL hashes of %d bytes for %d hashes, want %d", ErrLength, len(p), n, JournalHashesHeaderLen+32*n)
	case h.First == 0 || h.First+uint64(n-1) < h.First:
		return h, fmt.Errorf("%w: JOURNAL hashes from entry %d", ErrMalformed, h.First)
	}
	h.Start = p[1]&JournalHashesStart != 0
	copy(h.Prev[:], p[12:44])
	h.Hashes = make([][32]byte, n)
	for i := range h.Hashes {
		copy(h.Hashes[i][:], p[44+32*i:])
	}
	return h, nil
}
