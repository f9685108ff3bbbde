package wire

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// TelemetryLen is the plaintext of a telemetry HEARTBEAT (PROTOCOL.md §7.9):
// the 56-byte block of draft §8 (with state_digest and journal_head) plus
// 40 bytes that let the peer measure RTT, loss and throughput. A HEARTBEAT
// of NoticeLen bytes is a notice instead (overload.go); any other length is
// a protocol error.
const TelemetryLen = 96

// FlagsTelemetry is the flags word a telemetry HEARTBEAT is sent with:
// ENCRYPTED | TELEMETRY (draft Table 3: "Heartbeat carries telemetry data").
// Like every flag other than COMPRESSED, FRAGMENT and LAST_FRAG it is ignored
// on receipt; the plaintext length tells a telemetry block from a notice.
const FlagsTelemetry = FlagEncrypted | FlagTelemetry

// Telemetry is the plaintext of a telemetry HEARTBEAT. Fields 1-11 are draft
// §8's struct pool_telemetry in its order, big-endian (DESIGN 2.1: "all
// integers big-endian everywhere, telemetry included"); the rest are ours.
// Every rate and loss figure describes what the sender *received*; the peer
// measures what it sent itself and keeps both views side by side.
type Telemetry struct {
	RTTNs         uint64 // smoothed round-trip time, ns; 0 before the first sample
	JitterNs      uint64 // RFC 3550 smoothed RTT variation, ns
	LossPPM       uint32 // inbound loss over the last interval, parts per million
	ThroughputBps uint32 // inbound bits per second over the last interval, saturating
	MTU           uint16 // sender's current path MTU (POOL packet bytes); 65535 over TCP
	QueueDepth    uint16 // packets waiting in the sender's send queue, saturating
	UptimeNs      uint64 // sender's session clock (the header timestamp's clock)
	RekeyCount    uint32 // completed rekeys
	ConfigVersion uint32 // current configuration version; 0 until CONFIG exists
	StateDigest   uint32 // CRC-32 of the sender's transmit state (StateDigest)
	JournalHead   uint64 // first 8 bytes of the journal chain head; 0 until the journal exists

	EchoSeq       uint64 // seq of the last telemetry HEARTBEAT received from the peer; 0 = none
	EchoTimestamp uint64 // that HEARTBEAT's header timestamp (the peer's clock)
	EchoDelayNs   uint64 // ns between receiving it and sealing this one (the sender's clock)
	RxPackets     uint64 // authenticated packets received from the peer so far
	RxBytes       uint64 // their whole size on the wire (80 + payload length each)
}

// AppendTelemetry appends the 96-byte telemetry plaintext. It does not
// allocate when dst has room.
func AppendTelemetry(dst []byte, t *Telemetry) []byte {
	var b [TelemetryLen]byte
	binary.BigEndian.PutUint64(b[0:8], t.RTTNs)
	binary.BigEndian.PutUint64(b[8:16], t.JitterNs)
	binary.BigEndian.PutUint32(b[16:20], t.LossPPM)
	binary.BigEndian.PutUint32(b[20:24], t.ThroughputBps)
	binary.BigEndian.PutUint16(b[24:26], t.MTU)
	binary.BigEndian.PutUint16(b[26:28], t.QueueDepth)
	binary.BigEndian.PutUint64(b[28:36], t.UptimeNs)
	binary.BigEndian.PutUint32(b[36:40], t.RekeyCount)
	binary.BigEndian.PutUint32(b[40:44], t.ConfigVersion)
	binary.BigEndian.PutUint32(b[44:48], t.StateDigest)
	binary.BigEndian.PutUint64(b[48:56], t.JournalHead)
	binary.BigEndian.PutUint64(b[56:64], t.EchoSeq)
	binary.BigEndian.PutUint64(b[64:72], t.EchoTimestamp)
	binary.BigEndian.PutUint64(b[72:80], t.EchoDelayNs)
	binary.BigEndian.PutUint64(b[80:88], t.RxPackets)
	binary.BigEndian.PutUint64(b[88:96], t.RxBytes)
	return append(dst, b[:]...)
}

// ParseTelemetry decodes a telemetry HEARTBEAT plaintext. The layout has no
// reserved bytes and every value is a report, so the only rule is the exact
// length; what the values mean is checked by the receiver (PROTOCOL.md §7.9).
func ParseTelemetry(p []byte) (Telemetry, error) {
	var t Telemetry
	if len(p) != TelemetryLen {
		return t, fmt.Errorf("%w: telemetry HEARTBEAT plaintext is %d bytes, want %d", ErrLength, len(p), TelemetryLen)
	}
	t.RTTNs = binary.BigEndian.Uint64(p[0:8])
	t.JitterNs = binary.BigEndian.Uint64(p[8:16])
	t.LossPPM = binary.BigEndian.Uint32(p[16:20])
	t.ThroughputBps = binary.BigEndian.Uint32(p[20:24])
	t.MTU = binary.BigEndian.Uint16(p[24:26])
	t.QueueDepth = binary.BigEndian.Uint16(p[26:28])
	t.UptimeNs = binary.BigEndian.Uint64(p[28:36])
	t.RekeyCount = binary.BigEndian.Uint32(p[36:40])
	t.ConfigVersion = binary.BigEndian.Uint32(p[40:44])
	t.StateDigest = binary.BigEndian.Uint32(p[44:48])
	t.JournalHead = binary.BigEndian.Uint64(p[48:56])
	t.EchoSeq = binary.BigEndian.Uint64(p[56:64])
	t.EchoTimestamp = binary.BigEndian.Uint64(p[64:72])
	t.EchoDelayNs = binary.BigEndian.Uint64(p[72:80])
	t.RxPackets = binary.BigEndian.Uint64(p[80:88])
	t.RxBytes = binary.BigEndian.Uint64(p[88:96])
	return t, nil
}

// RTTSample computes one round-trip sample from a telemetry HEARTBEAT that
// echoes one of ours: now − EchoTimestamp − EchoDelayNs, where now is the
// receiver's own session clock (the clock of its header timestamps) when the
// HEARTBEAT was authenticated. Only the receiver's clock is differenced; the
// peer's clock contributes the delay, a duration. ok is false when the
// HEARTBEAT echoes nothing (EchoSeq 0) or the result would not be positive.
// The caller must also check that EchoSeq and EchoTimestamp name a telemetry
// HEARTBEAT it sent, and take one sample per echoed seq (PROTOCOL.md §7.9.3).
func (t *Telemetry) RTTSample(now uint64) (rtt uint64, ok bool) {
	if t.EchoSeq == 0 || now < t.EchoTimestamp {
		return 0, false
	}
	elapsed := now - t.EchoTimestamp
	if t.EchoDelayNs >= elapsed {
		return 0, false
	}
	return elapsed - t.EchoDelayNs, true
}

// StateDigestInputLen is the size of the serialization the state digest is
// computed over (PROTOCOL.md §7.9.2).
const StateDigestInputLen = 78

// StateDigestFormat is byte 0 of the digest input, so that a later
// definition of the digest can never collide with this one.
const StateDigestFormat = 0x01

// DigestState is the sender's transmit-side session state that a HEARTBEAT's
// state_digest commits to. Every field is a function of the packets the
// sender has sent (and of the session's fixed identity), so the receiver,
// which has received all of them, holds a replica and recomputes the digest
// (draft §17.3: "each peer [holds] an independent replica of the other's
// state"). See PROTOCOL.md §7.9.2 for how each side maintains it.
type DigestState struct {
	Role          Role     // the sender's handshake role
	SID           [16]byte // the session ID
	Epoch         uint32   // epoch of the keys that seal the HEARTBEAT
	Seq           uint64   // the HEARTBEAT's own sequence number
	EpochFirstSeq uint64   // first seq the sender sealed under Epoch
	DataBytesSent uint64   // DATA plaintext bytes sent before this HEARTBEAT, all channels
	// TxActive has bit N set when the sender has sent non-empty DATA on
	// channel N since the last FIN or RST it sent on N. Channel N is byte
	// N/8, mask 0x80>>(N%8) (MSB-first, PROTOCOL.md §1.4).
	TxActive [32]byte
}

// SetActive sets or clears channel ch's bit in TxActive.
func (d *DigestState) SetActive(ch uint8, on bool) {
	m := byte(0x80) >> (ch & 7)
	if on {
		d.TxActive[ch>>3] |= m
	} else {
		d.TxActive[ch>>3] &^= m
	}
}

// Active reports channel ch's bit in TxActive.
func (d *DigestState) Active(ch uint8) bool { return d.TxActive[ch>>3]&(0x80>>(ch&7)) != 0 }

// AppendStateDigestInput appends the 78-byte serialization of d:
// u8(format 1) ‖ u8(role) ‖ SID ‖ BE32(epoch) ‖ BE64(seq) ‖
// BE64(epoch_first_seq) ‖ BE64(data_bytes_sent) ‖ tx_active (32 bytes).
func AppendStateDigestInput(dst []byte, d *DigestState) []byte {
	var b [StateDigestInputLen]byte
	putStateDigestInput(&b, d)
	return append(dst, b[:]...)
}

func putStateDigestInput(b *[StateDigestInputLen]byte, d *DigestState) {
	b[0] = StateDigestFormat
	b[1] = byte(d.Role)
	copy(b[2:18], d.SID[:])
	binary.BigEndian.PutUint32(b[18:22], d.Epoch)
	binary.BigEndian.PutUint64(b[22:30], d.Seq)
	binary.BigEndian.PutUint64(b[30:38], d.EpochFirstSeq)
	binary.BigEndian.PutUint64(b[38:46], d.DataBytesSent)
	copy(b[46:78], d.TxActive[:])
}

// StateDigest is the state_digest of a telemetry HEARTBEAT: CRC-32/IEEE (the
// zlib and hash/crc32 CRC: reflected polynomial 0xEDB88320, initial value and
// final XOR 0xFFFFFFFF) of AppendStateDigestInput(nil, d). It is an
// error-detecting checksum, not a MAC: the HEARTBEAT's AEAD and HMAC keep
// third parties from forging it, and a compromised sender can always compute
// it over false state (PROTOCOL.md §7.9.2).
func StateDigest(d *DigestState) uint32 {
	var b [StateDigestInputLen]byte
	putStateDigestInput(&b, d)
	return crc32.ChecksumIEEE(b[:])
}
