// Package wire encodes and decodes POOL v1 packets: the 80-byte common header
// (draft §3, DESIGN 2.1) and every payload layout of docs/PROTOCOL.md. It is
// pure: no I/O, no keys, no clocks.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderLen is the size of the common header (draft §3).
const HeaderLen = 80

// MaxPayload is the largest payload the 16-bit length field can describe.
const MaxPayload = 65535

// TagLen is the ChaCha20-Poly1305 tag carried at the end of every protected payload.
const TagLen = 16

// Version1 is the only protocol version this package speaks on the wire.
const Version1 = 1

// Type is the 4-bit packet type (draft §3.1, Table 2).
type Type uint8

// Packet types (draft Table 2). ACCEPT reuses RESPONSE's value sent server to
// client (handshake.md §8.6); the receiver's state decides which it is.
const (
	TypeInit      Type = 0x0
	TypeChallenge Type = 0x1
	TypeResponse  Type = 0x2
	TypeAccept    Type = 0x2
	TypeData      Type = 0x3
	TypeAck       Type = 0x4
	TypeHeartbeat Type = 0x5
	TypeRekey     Type = 0x6
	TypeClose     Type = 0x7
	TypeConfig    Type = 0x8
	TypeRollback  Type = 0x9
	TypeDiscover  Type = 0xA
	TypeJournal   Type = 0xB
	TypeIntegrity Type = 0xC
)

var typeNames = [...]string{"INIT", "CHALLENGE", "RESPONSE", "DATA", "ACK", "HEARTBEAT",
	"REKEY", "CLOSE", "CONFIG", "ROLLBACK", "DISCOVER", "JOURNAL", "INTEGRITY"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("TYPE(%#x)", uint8(t))
}

// Flags (draft §3.2, Table 3). "Bit N" is 1<<N of the big-endian 16-bit field
// (DESIGN 2.1).
const (
	FlagEncrypted     uint16 = 1 << 0
	FlagCompressed    uint16 = 1 << 1
	FlagPriority      uint16 = 1 << 2
	FlagFragment      uint16 = 1 << 3
	FlagLastFrag      uint16 = 1 << 4
	FlagRequireAck    uint16 = 1 << 5
	FlagTelemetry     uint16 = 1 << 6
	FlagRollbackReady uint16 = 1 << 7
	FlagConfigLocked  uint16 = 1 << 8
	FlagJournalSync   uint16 = 1 << 9
	// FlagsDefined masks bits 0-9; bits 10-15 are reserved (sent zero,
	// ignored on receipt, draft §3.2).
	FlagsDefined uint16 = 1<<10 - 1
)

// Header is the decoded common header. Res1 and Res47 keep the reserved
// bytes as received: ordinary packets ignore them (draft §3), but INIT and
// CHALLENGE must be canonical and reject non-zero reserved bytes
// (handshake.md §1.1 P1.3).
type Header struct {
	Version   uint8
	Type      Type
	Res1      uint8
	Flags     uint16
	Seq       uint64
	Ack       uint64
	SID       [16]byte
	Timestamp uint64
	Length    uint16
	Channel   uint8
	Res47     uint8
	HMAC      [32]byte
}

// Errors returned by the decoders. Every decoding failure wraps one of them.
var (
	ErrShort     = errors.New("wire: packet too short")
	ErrLength    = errors.New("wire: wrong length")
	ErrVersion   = errors.New("wire: unsupported version")
	ErrType      = errors.New("wire: unexpected packet type")
	ErrReserved  = errors.New("wire: non-zero reserved field")
	ErrMalformed = errors.New("wire: malformed payload")
)

// PutHeader writes h into b[0:80]. Reserved bytes are always written as zero
// (draft §3: "MUST be zero on transmission"), whatever Res1/Res47 hold.
func PutHeader(b []byte, h *Header) {
	_ = b[HeaderLen-1]
	b[0] = h.Version<<4 | uint8(h.Type)&0x0f
	b[1] = 0
	binary.BigEndian.PutUint16(b[2:4], h.Flags)
	binary.BigEndian.PutUint64(b[4:12], h.Seq)
	binary.BigEndian.PutUint64(b[12:20], h.Ack)
	copy(b[20:36], h.SID[:])
	binary.BigEndian.PutUint64(b[36:44], h.Timestamp)
	binary.BigEndian.PutUint16(b[44:46], h.Length)
	b[46] = h.Channel
	b[47] = 0
	copy(b[48:80], h.HMAC[:])
}

// ParseHeader decodes the first 80 bytes of b. It checks only that 80 bytes
// are present; version, type and length policy belong to the caller, which
// knows the state it is in (handshake.md §4.4).
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderLen {
		return h, fmt.Errorf("%w: %d bytes, header needs %d", ErrShort, len(b), HeaderLen)
	}
	h.Version = b[0] >> 4
	h.Type = Type(b[0] & 0x0f)
	h.Res1 = b[1]
	h.Flags = binary.BigEndian.Uint16(b[2:4])
	h.Seq = binary.BigEndian.Uint64(b[4:12])
	h.Ack = binary.BigEndian.Uint64(b[12:20])
	copy(h.SID[:], b[20:36])
	h.Timestamp = binary.BigEndian.Uint64(b[36:44])
	h.Length = binary.BigEndian.Uint16(b[44:46])
	h.Channel = b[46]
	h.Res47 = b[47]
	copy(h.HMAC[:], b[48:80])
	return h, nil
}

// PayloadLen reads the length field of a header without decoding the rest;
// the TCP framer uses it to know how many bytes follow.
func PayloadLen(hdr []byte) int { return int(binary.BigEndian.Uint16(hdr[44:46])) }

// PacketVersion and PacketType read byte 0 without decoding the rest.
func PacketVersion(b []byte) uint8 { return b[0] >> 4 }

// PacketType returns the type nibble of byte 0.
func PacketType(b []byte) Type { return Type(b[0] & 0x0f) }
