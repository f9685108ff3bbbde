package wire

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Code is a CLOSE error code: draft §11 Table 4, plus the codes the draft
// names without numbering (NO_ERROR for a clean close, VERSION_DOWNGRADE for
// P13) and PROTOCOL_ERROR for authenticated packets that break a rule of
// docs/PROTOCOL.md.
type Code uint8

// CLOSE codes.
const (
	CodeNoError          Code = 0x00
	CodeAuthFail         Code = 0x01
	CodeDecryptFail      Code = 0x02
	CodeSeqInvalid       Code = 0x03
	CodeFragTimeout      Code = 0x04
	CodeMTUExceeded      Code = 0x05
	CodeConfigReject     Code = 0x06
	CodeRekeyFail        Code = 0x07
	CodeJournalFull      Code = 0x08
	CodeOverload         Code = 0x09
	CodeVersionMismatch  Code = 0x0A
	CodeVersionDowngrade Code = 0x0B
	CodeProtocolError    Code = 0x0C

	// CodeApplication is the first of the codes 0x80-0xFF that belong to
	// applications: the protocol will never assign them, so a program can
	// give them its own meanings (0x0D-0x7F stay reserved for the protocol).
	CodeApplication Code = 0x80
)

var codeNames = map[Code]string{
	CodeNoError: "NO_ERROR", CodeAuthFail: "AUTH_FAIL", CodeDecryptFail: "DECRYPT_FAIL",
	CodeSeqInvalid: "SEQ_INVALID", CodeFragTimeout: "FRAG_TIMEOUT", CodeMTUExceeded: "MTU_EXCEEDED",
	CodeConfigReject: "CONFIG_REJECT", CodeRekeyFail: "REKEY_FAIL", CodeJournalFull: "JOURNAL_FULL",
	CodeOverload: "OVERLOAD", CodeVersionMismatch: "VERSION_MISMATCH",
	CodeVersionDowngrade: "VERSION_DOWNGRADE", CodeProtocolError: "PROTOCOL_ERROR",
}

func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	if c >= CodeApplication {
		return fmt.Sprintf("APPLICATION(%#02x)", uint8(c))
	}
	return fmt.Sprintf("CODE(%#02x)", uint8(c))
}

// Scope says what a CLOSE ends. Channels need a FIN of their own so that a
// half-close (EOF on one direction of one channel) can be carried without
// ending the session; the draft has no other packet for it.
type Scope uint8

// CLOSE scopes.
const (
	ScopeSession    Scope = 0 // the whole session (draft §3.1 CLOSE)
	ScopeChannelFIN Scope = 1 // the sender will send no more DATA on Header.Channel
	ScopeChannelRST Scope = 2 // the sender abandons Header.Channel in both directions
)

// CloseFixedLen is the fixed part of a CLOSE plaintext; MaxReasonLen bounds
// the UTF-8 reason that follows.
const (
	CloseFixedLen = 8
	MaxReasonLen  = 256
)

// Close is the plaintext of an authenticated CLOSE. Its first 8 bytes have
// the layout of the version-negotiation CLOSE (handshake.md §8.7), whose
// Detail carries the sender's version bitmap.
type Close struct {
	Code   Code
	Scope  Scope
	Detail uint16
	Reason string
}

// AppendClose appends the CLOSE plaintext. A CLOSE must always be
// sendable, so the reason is repaired rather than refused: invalid UTF-8
// becomes U+FFFD and an over-long reason is cut at a rune boundary.
func AppendClose(dst []byte, c *Close) []byte {
	reason := strings.ToValidUTF8(c.Reason, "\uFFFD")
	if len(reason) > MaxReasonLen {
		cut := MaxReasonLen
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	var b [CloseFixedLen]byte
	b[0] = byte(c.Code)
	b[1] = byte(c.Scope)
	binary.BigEndian.PutUint16(b[2:4], c.Detail)
	dst = append(dst, b[:]...)
	return append(dst, reason...)
}

// ParseClose decodes a CLOSE plaintext. Reserved bytes 4-7 are ignored
// (draft §3's rule for reserved fields); an unknown scope or invalid UTF-8 is
// malformed.
func ParseClose(p []byte) (Close, error) {
	var c Close
	if len(p) < CloseFixedLen || len(p) > CloseFixedLen+MaxReasonLen {
		return c, fmt.Errorf("%w: CLOSE plaintext is %d bytes, want %d..%d", ErrLength, len(p), CloseFixedLen, CloseFixedLen+MaxReasonLen)
	}
	c.Code = Code(p[0])
	c.Scope = Scope(p[1])
	if c.Scope > ScopeChannelRST {
		return c, fmt.Errorf("%w: CLOSE scope %d", ErrMalformed, c.Scope)
	}
	c.Detail = binary.BigEndian.Uint16(p[2:4])
	if !utf8.Valid(p[CloseFixedLen:]) {
		return c, fmt.Errorf("%w: CLOSE reason is not UTF-8", ErrMalformed)
	}
	c.Reason = string(p[CloseFixedLen:])
	return c, nil
}
