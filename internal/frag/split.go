package frag

import (
	"errors"
	"fmt"
	"math"
)

// Split cuts msg into consecutive fragments of at most maxFragPayload bytes
// and calls fn for each, in order: part is msg[offset:offset+len(part)]
// (not a copy), total is len(msg), and last is set on the final fragment
// only — exactly the fields Reassembler.Add checks. It stops at the first
// error from fn and returns it.
//
// Split always emits at least one fragment, so deciding whether a message
// needs fragmenting at all, and refusing messages longer than the peer's
// MaxMessage (16 × MTU, P04), is the caller's job. Fragments are emitted in
// order because in-order arrival is what the Reassembler stores cheapest.
func Split(msg []byte, maxFragPayload int, fn func(offset, total uint32, last bool, part []byte) error) error {
	switch {
	case maxFragPayload < 1:
		return fmt.Errorf("frag: fragment payload %d; need at least 1 byte", maxFragPayload)
	case len(msg) == 0:
		return errors.New("frag: cannot fragment an empty message")
	case uint64(len(msg)) > math.MaxUint32:
		return fmt.Errorf("frag: message of %d bytes does not fit a 32-bit total", len(msg))
	}
	total := uint32(len(msg))
	for off := 0; off < len(msg); {
		end := off + min(maxFragPayload, len(msg)-off)
		if err := fn(uint32(off), total, end == len(msg), msg[off:end]); err != nil {
			return err
		}
		off = end
	}
	return nil
}
