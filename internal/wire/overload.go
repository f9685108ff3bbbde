package wire

import (
	"encoding/binary"
	"fmt"
	"time"
)

// NoticeLen is the plaintext of a notice HEARTBEAT (PROTOCOL.md §7.13): a
// non-fatal, encrypted error notification (draft §11: an error "MAY produce
// an encrypted error notification to the peer"). It travels in a HEARTBEAT
// so that it can never end the session and so that a node without this
// layer accepts and ignores it (§7.7) instead of closing; a HEARTBEAT of
// TelemetryLen bytes is telemetry instead.
const NoticeLen = 8

// MaxPause is the longest pause one OVERLOAD notice can ask for.
const MaxPause = 65535 * time.Millisecond

// Notice is a notice HEARTBEAT's plaintext. Code is a §7.5 error code, as in
// CLOSE's first byte. Two codes are defined:
//
//   - CodeOverload: the sender is about to shed load. The receiver holds new
//     DATA (and opens no new channel) for Pause milliseconds from receipt,
//     or until a notice with Pause 0 ("resume") arrives. MsgID is unused.
//   - CodeFragTimeout: the sender abandoned the reassembly of the receiver's
//     fragmented message MsgID (timeout, eviction or memory cap). Pause is
//     unused.
//
// Unused fields are sent as zero and ignored on receipt. A notice with any
// other code is accepted and ignored, for later layers.
type Notice struct {
	Code  Code
	Pause uint16 // OVERLOAD: ms; 0 = resume
	MsgID uint32 // FRAG_TIMEOUT: the abandoned message
}

// AppendNotice appends u8(code) ‖ u8(0) ‖ BE16(pause_ms) ‖ BE32(msg_id),
// writing Pause only for OVERLOAD and MsgID only for FRAG_TIMEOUT. It does
// not allocate when dst has room.
func AppendNotice(dst []byte, n *Notice) []byte {
	var b [NoticeLen]byte
	b[0] = byte(n.Code)
	switch n.Code {
	case CodeOverload:
		binary.BigEndian.PutUint16(b[2:4], n.Pause)
	case CodeFragTimeout:
		binary.BigEndian.PutUint32(b[4:8], n.MsgID)
	}
	return append(dst, b[:]...)
}

// ParseNotice decodes a notice HEARTBEAT plaintext: exactly 8 bytes; byte 1
// and the fields the code does not use are ignored.
func ParseNotice(p []byte) (Notice, error) {
	var n Notice
	if len(p) != NoticeLen {
		return n, fmt.Errorf("%w: notice HEARTBEAT plaintext is %d bytes, want %d", ErrLength, len(p), NoticeLen)
	}
	n.Code = Code(p[0])
	switch n.Code {
	case CodeOverload:
		n.Pause = binary.BigEndian.Uint16(p[2:4])
	case CodeFragTimeout:
		n.MsgID = binary.BigEndian.Uint32(p[4:8])
	}
	return n, nil
}

// OverloadPause converts a pause to the notice's milliseconds, rounding up
// so that a positive pause never becomes "resume", and capping at MaxPause.
func OverloadPause(d time.Duration) uint16 {
	switch {
	case d <= 0:
		return 0
	case d >= MaxPause:
		return 65535
	}
	return uint16((d + time.Millisecond - 1) / time.Millisecond)
}
