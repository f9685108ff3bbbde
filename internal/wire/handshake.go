package wire

import (
	"encoding/binary"
	"fmt"
)

// Exact sizes of the v1 handshake packets (handshake.md §8.3-8.7). Every
// handshake packet has one exact length, which keeps parsing unambiguous and
// lets the TCP framer read into fixed arrays (handshake.md §7.5).
const (
	InitLen      = 144
	ChallengeLen = 120
	ResponseLen  = 236
	AcceptLen    = 136
	VNCloseLen   = 88

	InitPayloadLen      = InitLen - HeaderLen      // 64
	ChallengePayloadLen = ChallengeLen - HeaderLen // 40
	ResponsePayloadLen  = ResponseLen - HeaderLen  // 156
	AcceptPayloadLen    = AcceptLen - HeaderLen    // 56

	// ResponseEchoLen is the cleartext part of the RESPONSE payload (echo and
	// puzzle nonce) that enters h1 and the RESPONSE HMAC.
	ResponseEchoLen = 84
	// ParamsLen is the size of params_C / params_S (zero in v1, reserved for options).
	ParamsLen = 8
)

// Versions bitmaps: bit v set = speaks version v (handshake.md §7.1).
const VersionsV1 uint16 = 1 << Version1

// Init is the INIT payload (handshake.md §8.3).
type Init struct {
	Seq        uint64 // ISN_C
	Timestamp  uint64 // T_C, wall clock ns since the Unix epoch
	EC         [32]byte
	Versions   uint16
	ServerHint [8]byte
}

// AppendInit appends the canonical 144-byte INIT.
func AppendInit(dst []byte, in *Init) []byte {
	var b [InitLen]byte
	PutHeader(b[:], &Header{Version: Version1, Type: TypeInit, Seq: in.Seq,
		Timestamp: in.Timestamp, Length: InitPayloadLen})
	copy(b[80:112], in.EC[:])
	binary.BigEndian.PutUint16(b[112:114], in.Versions)
	copy(b[114:122], in.ServerHint[:])
	return append(dst, b[:]...)
}

// ParseInit accepts only a canonical INIT: exact length, every fixed field at
// its value, every reserved or padding byte zero. A server rebuilds INIT*
// byte for byte from the RESPONSE echo, so an INIT with any free bit could
// never complete (handshake.md P1.3). The version nibble is the caller's
// concern (a non-1 version earns a version-negotiation CLOSE).
func ParseInit(b []byte) (Init, error) {
	var in Init
	if len(b) != InitLen {
		return in, fmt.Errorf("%w: INIT is %d bytes, want %d", ErrLength, len(b), InitLen)
	}
	h, _ := ParseHeader(b)
	if h.Type != TypeInit {
		return in, fmt.Errorf("%w: %v, want INIT", ErrType, h.Type)
	}
	if h.Version != Version1 {
		return in, fmt.Errorf("%w: %d", ErrVersion, h.Version)
	}
	if h.Res1 != 0 || h.Flags != 0 || h.Ack != 0 || h.SID != ([16]byte{}) || h.Length != InitPayloadLen ||
		h.Channel != 0 || h.Res47 != 0 || h.HMAC != ([32]byte{}) || !allZero(b[122:144]) {
		return in, fmt.Errorf("%w: INIT is not canonical", ErrReserved)
	}
	in.Seq = h.Seq
	in.Timestamp = h.Timestamp
	copy(in.EC[:], b[80:112])
	in.Versions = binary.BigEndian.Uint16(b[112:114])
	copy(in.ServerHint[:], b[114:122])
	return in, nil
}

// Challenge is the CHALLENGE (handshake.md §8.4).
type Challenge struct {
	Ack      uint64 // ISN_C echoed
	SID      [16]byte
	TIssue   uint64 // t_iss, server wall clock ns
	SS       [32]byte
	Versions uint16
	D        uint8
	J        uint8
}

// AppendChallenge appends the canonical 120-byte CHALLENGE.
func AppendChallenge(dst []byte, c *Challenge) []byte {
	var b [ChallengeLen]byte
	PutHeader(b[:], &Header{Version: Version1, Type: TypeChallenge, Ack: c.Ack, SID: c.SID,
		Timestamp: c.TIssue, Length: ChallengePayloadLen})
	copy(b[80:112], c.SS[:])
	binary.BigEndian.PutUint16(b[112:114], c.Versions)
	b[114] = c.D
	b[115] = c.J
	return append(dst, b[:]...)
}

// ParseChallenge accepts only a canonical CHALLENGE (h0 hashes it whole).
func ParseChallenge(b []byte) (Challenge, error) {
	var c Challenge
	if len(b) != ChallengeLen {
		return c, fmt.Errorf("%w: CHALLENGE is %d bytes, want %d", ErrLength, len(b), ChallengeLen)
	}
	h, _ := ParseHeader(b)
	if h.Version != Version1 {
		return c, fmt.Errorf("%w: %d", ErrVersion, h.Version)
	}
	if h.Type != TypeChallenge {
		return c, fmt.Errorf("%w: %v, want CHALLENGE", ErrType, h.Type)
	}
	if h.Res1 != 0 || h.Flags != 0 || h.Seq != 0 || h.Length != ChallengePayloadLen ||
		h.Channel != 0 || h.Res47 != 0 || h.HMAC != ([32]byte{}) || !allZero(b[116:120]) {
		return c, fmt.Errorf("%w: CHALLENGE is not canonical", ErrReserved)
	}
	c.Ack = h.Ack
	c.SID = h.SID
	c.TIssue = h.Timestamp
	copy(c.SS[:], b[80:112])
	c.Versions = binary.BigEndian.Uint16(b[112:114])
	c.D = b[114]
	c.J = b[115]
	return c, nil
}

// Response is the RESPONSE payload (handshake.md §8.5). The header is kept
// separately because h1 and the HMAC cover its bytes as sent.
type Response struct {
	EC         [32]byte
	TC         uint64
	ISNC       uint64
	Versions   uint16
	ServerHint [8]byte
	TIssue     uint64
	D          uint8
	J          uint8
	N          [16]byte
	CStatic    [48]byte // Seal(enc1, s_C) with tag
	CParams    [24]byte // Seal(enc2, params_C) with tag
}

// PutResponsePayload writes the 156-byte payload into b.
func PutResponsePayload(b []byte, r *Response) {
	_ = b[ResponsePayloadLen-1]
	copy(b[0:32], r.EC[:])
	binary.BigEndian.PutUint64(b[32:40], r.TC)
	binary.BigEndian.PutUint64(b[40:48], r.ISNC)
	binary.BigEndian.PutUint16(b[48:50], r.Versions)
	copy(b[50:58], r.ServerHint[:])
	binary.BigEndian.PutUint64(b[58:66], r.TIssue)
	b[66] = r.D
	b[67] = r.J
	copy(b[68:84], r.N[:])
	copy(b[84:132], r.CStatic[:])
	copy(b[132:156], r.CParams[:])
}

// ParseResponse splits a RESPONSE into header and payload fields. It checks
// the exact length and type; the server's order of semantic checks lives in
// the handshake package (handshake.md §8.5).
func ParseResponse(b []byte) (Header, Response, error) {
	var r Response
	if len(b) != ResponseLen {
		return Header{}, r, fmt.Errorf("%w: RESPONSE is %d bytes, want %d", ErrLength, len(b), ResponseLen)
	}
	h, _ := ParseHeader(b)
	if h.Version != Version1 {
		return h, r, fmt.Errorf("%w: %d", ErrVersion, h.Version)
	}
	if h.Type != TypeResponse {
		return h, r, fmt.Errorf("%w: %v, want RESPONSE", ErrType, h.Type)
	}
	p := b[HeaderLen:]
	copy(r.EC[:], p[0:32])
	r.TC = binary.BigEndian.Uint64(p[32:40])
	r.ISNC = binary.BigEndian.Uint64(p[40:48])
	r.Versions = binary.BigEndian.Uint16(p[48:50])
	copy(r.ServerHint[:], p[50:58])
	r.TIssue = binary.BigEndian.Uint64(p[58:66])
	r.D = p[66]
	r.J = p[67]
	copy(r.N[:], p[68:84])
	copy(r.CStatic[:], p[84:132])
	copy(r.CParams[:], p[132:156])
	return h, r, nil
}

// Accept is the ACCEPT payload (handshake.md §8.6).
type Accept struct {
	ES      [32]byte
	CParams [24]byte // Seal(enc3, params_S) with tag
}

// PutAcceptPayload writes the 56-byte payload into b.
func PutAcceptPayload(b []byte, a *Accept) {
	_ = b[AcceptPayloadLen-1]
	copy(b[0:32], a.ES[:])
	copy(b[32:56], a.CParams[:])
}

// ParseAccept splits an ACCEPT into header and payload.
func ParseAccept(b []byte) (Header, Accept, error) {
	var a Accept
	if len(b) != AcceptLen {
		return Header{}, a, fmt.Errorf("%w: ACCEPT is %d bytes, want %d", ErrLength, len(b), AcceptLen)
	}
	h, _ := ParseHeader(b)
	if h.Version != Version1 {
		return h, a, fmt.Errorf("%w: %d", ErrVersion, h.Version)
	}
	if h.Type != TypeAccept {
		return h, a, fmt.Errorf("%w: %v, want ACCEPT", ErrType, h.Type)
	}
	copy(a.ES[:], b[80:112])
	copy(a.CParams[:], b[112:136])
	return h, a, nil
}

// AppendVersionClose appends the cleartext version-negotiation CLOSE that
// answers an INIT-shaped packet of another version (handshake.md §8.7). Its
// ack echoes the received bytes 4..11 so a blind attacker cannot forge it
// for a client it cannot see; it is 88 bytes, never larger than the INIT.
func AppendVersionClose(dst []byte, receivedSeq [8]byte, versions uint16) []byte {
	var b [VNCloseLen]byte
	PutHeader(b[:], &Header{Version: Version1, Type: TypeClose,
		Ack: binary.BigEndian.Uint64(receivedSeq[:]), Length: 8})
	b[80] = byte(CodeVersionMismatch)
	binary.BigEndian.PutUint16(b[82:84], versions)
	return append(dst, b[:]...)
}

// ParseVersionClose decodes a version-negotiation CLOSE and returns the
// server's version bitmap and the echoed seq. The client treats it as a hint
// only (handshake.md §7.3).
func ParseVersionClose(b []byte) (ack uint64, versions uint16, err error) {
	if len(b) != VNCloseLen {
		return 0, 0, fmt.Errorf("%w: version CLOSE is %d bytes, want %d", ErrLength, len(b), VNCloseLen)
	}
	h, _ := ParseHeader(b)
	if h.Type != TypeClose || h.Flags != 0 || h.Length != 8 || b[80] != byte(CodeVersionMismatch) {
		return 0, 0, fmt.Errorf("%w: not a version-negotiation CLOSE", ErrMalformed)
	}
	return h.Ack, binary.BigEndian.Uint16(b[82:84]), nil
}

func allZero(b []byte) bool {
	var acc byte
	for _, x := range b {
		acc |= x
	}
	return acc == 0
}
