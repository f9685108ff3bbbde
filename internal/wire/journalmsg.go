package wire

import (
	"encoding/binary"
	"fmt"
)

// JournalKindCheckpoint is the only JOURNAL message kind defined
// (PROTOCOL.md §7.16): a checkpoint of the sender's change-journal chain.
const JournalKindCheckpoint = 1

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
