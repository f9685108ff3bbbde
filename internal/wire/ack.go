package wire

import (
	"encoding/binary"
	"fmt"
)

// WindowUpdateLen is the size of one flow-control entry in an ACK plaintext.
const WindowUpdateLen = 8

// MaxWindowUpdates bounds the entries in one ACK: one per channel.
const MaxWindowUpdates = 256

// WindowUpdate grants the peer Credit more bytes of DATA plaintext on
// Channel (DESIGN 2.12: per-channel credit windows). The draft's ACK is a
// "pure acknowledgment" with no payload; we carry credits in its sealed
// plaintext so that flow control costs no new packet type.
//
// Gen is the channel's generation: how many times its number has been
// freed before (after FIN or RST in both directions). A grant still in
// flight when the number is freed and reopened carries the old generation
// and is ignored, so it cannot inflate the new channel's credit.
type WindowUpdate struct {
	Channel uint8
	Gen     uint16
	Credit  uint32
}

// AppendWindowUpdate appends one 8-byte entry: channel, 1 reserved byte,
// BE16 generation, BE32 credit.
func AppendWindowUpdate(dst []byte, w WindowUpdate) []byte {
	var b [WindowUpdateLen]byte
	b[0] = w.Channel
	binary.BigEndian.PutUint16(b[2:4], w.Gen)
	binary.BigEndian.PutUint32(b[4:8], w.Credit)
	return append(dst, b[:]...)
}

// ParseAck calls fn for each window update in an ACK plaintext. An empty
// plaintext is a pure acknowledgment.
func ParseAck(p []byte, fn func(WindowUpdate)) error {
	if len(p)%WindowUpdateLen != 0 || len(p)/WindowUpdateLen > MaxWindowUpdates {
		return fmt.Errorf("%w: ACK plaintext of %d bytes", ErrLength, len(p))
	}
	for i := 0; i < len(p); i += WindowUpdateLen {
		fn(WindowUpdate{Channel: p[i], Gen: binary.BigEndian.Uint16(p[i+2 : i+4]), Credit: binary.BigEndian.Uint32(p[i+4 : i+8])})
	}
	return nil
}
