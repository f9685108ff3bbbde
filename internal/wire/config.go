package wire

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Peer configuration messages (PROTOCOL.md §7.15): CONFIG (0x8) proposes,
// confirms, accepts and rejects a change of the receiver's session
// parameters; ROLLBACK (0x9) asks for and reports the restoration of the
// previous parameters. Every message of both types has one fixed layout of
// ConfigMsgLen bytes; the kind byte says which fields mean something.

// CONFIG kinds.
const (
	ConfigPropose uint8 = 1 // proposer → receiver: apply these parameters tentatively
	ConfigConfirm uint8 = 2 // proposer → receiver: the confirmation request, retried at 1, 2, 4 s (P07)
	ConfigAccept  uint8 = 3 // receiver → proposer: applied tentatively
	ConfigReject  uint8 = 4 // receiver → proposer: refused (code CONFIG_REJECT, a detail)
)

// ROLLBACK kinds.
const (
	RollbackRequest uint8 = 1 // proposer → receiver: restore the previous parameters
	RollbackDone    uint8 = 2 // receiver → proposer: restored (hash verified)
)

// Details of a CONFIG REJECT (byte 2; the code, byte 1, is CONFIG_REJECT).
const (
	RejectLocked       uint8 = 1 // the receiver's configuration is locked (CONFIG_LOCKED)
	RejectStale        uint8 = 2 // version not above every version seen, or prev_version/prev_hash not the current
	RejectBusy         uint8 = 3 // a tentative configuration is still within its deadline
	RejectInvalid      uint8 = 4 // a parameter or the deadline out of range, or unsupported
	RejectNotTentative uint8 = 5 // a ROLLBACK for a configuration that is not (or no longer) tentative
)

// Sizes of the configuration encodings.
const (
	ConfigParamsLen = 20                                   // the parameter block
	ConfigSerialLen = 4 + ConfigParamsLen                  // BE32 version ‖ params: what is hashed
	ConfigMsgLen    = 16 + 2*sha256.Size + ConfigParamsLen // 100
)

// Compression policies. Compression is not implemented: only Off is valid.
const CompressionOff uint8 = 0

// ConfigParams are the session parameters a peer may set (PROTOCOL.md
// §7.15). Their serialization is 20 bytes, big-endian:
// heartbeat_ms (4) ‖ rekey_interval_s (4) ‖ rekey_packets (8) ‖ mtu_max (2)
// ‖ compression (1) ‖ reserved (1).
type ConfigParams struct {
	HeartbeatMs    uint32 // telemetry HEARTBEAT interval
	RekeyIntervalS uint32 // rekey when the send keys are this old
	RekeyPackets   uint64 // rekey after this many packets under one key
	MTUMax         uint16 // cap on the path MTU; 0 = no cap
	Compression    uint8  // CompressionOff
}

// AppendConfigParams appends the 20-byte parameter block.
func AppendConfigParams(dst []byte, p *ConfigParams) []byte {
	var b [ConfigParamsLen]byte
	binary.BigEndian.PutUint32(b[0:4], p.HeartbeatMs)
	binary.BigEndian.PutUint32(b[4:8], p.RekeyIntervalS)
	binary.BigEndian.PutUint64(b[8:16], p.RekeyPackets)
	binary.BigEndian.PutUint16(b[16:18], p.MTUMax)
	b[18] = p.Compression
	return append(dst, b[:]...)
}

func parseConfigParams(b []byte) ConfigParams {
	return ConfigParams{
		HeartbeatMs: binary.BigEndian.Uint32(b[0:4]), RekeyIntervalS: binary.BigEndian.Uint32(b[4:8]),
		RekeyPackets: binary.BigEndian.Uint64(b[8:16]), MTUMax: binary.BigEndian.Uint16(b[16:18]),
		Compression: b[18],
	}
}

// AppendConfigSerial appends the serialized configuration: BE32 version ‖
// the parameter block (24 bytes). Its SHA-256 is the configuration's hash.
func AppendConfigSerial(dst []byte, version uint32, p *ConfigParams) []byte {
	dst = binary.BigEndian.AppendUint32(dst, version)
	return AppendConfigParams(dst, p)
}

// ConfigHash is SHA-256 of the serialized configuration (draft §9: "SHA-256
// hashes of the serialized current and previous configurations").
func ConfigHash(version uint32, p *ConfigParams) [32]byte {
	var b [ConfigSerialLen]byte
	return sha256.Sum256(AppendConfigSerial(b[:0], version, p))
}

// ConfigMsg is a CONFIG or ROLLBACK plaintext. Fields a kind does not use
// are sent zero and ignored on receipt (PROTOCOL.md §7.15).
type ConfigMsg struct {
	Kind        uint8
	Code        Code  // REJECT: CodeConfigReject
	Detail      uint8 // REJECT: Reject*
	Version     uint32
	PrevVersion uint32
	// Value is the rollback deadline in ms (PROPOSE, ACCEPT) or the highest
	// version the receiver has seen (REJECT).
	Value    uint32
	Hash     [32]byte
	PrevHash [32]byte
	Params   ConfigParams
}

// AppendConfigMsg appends the 100-byte message: kind ‖ code ‖ detail ‖
// reserved ‖ BE32 version ‖ BE32 prev_version ‖ BE32 value ‖ hash ‖
// prev_hash ‖ params.
func AppendConfigMsg(dst []byte, m *ConfigMsg) []byte {
	var b [ConfigMsgLen]byte
	b[0], b[1], b[2] = m.Kind, byte(m.Code), m.Detail
	binary.BigEndian.PutUint32(b[4:8], m.Version)
	binary.BigEndian.PutUint32(b[8:12], m.PrevVersion)
	binary.BigEndian.PutUint32(b[12:16], m.Value)
	copy(b[16:48], m.Hash[:])
	copy(b[48:80], m.PrevHash[:])
	AppendConfigParams(b[80:80], &m.Params)
	return append(dst, b[:]...)
}

// ParseConfigMsg decodes the plaintext of a CONFIG (typ TypeConfig) or
// ROLLBACK (TypeRollback). It refuses, as malformed: a length other than
// 100; a kind the type does not define; a PROPOSE, ACCEPT or ROLLBACK DONE
// whose hash is not ConfigHash(version, params); a REJECT whose code is not
// CONFIG_REJECT, whose detail is unknown, or whose prev_hash is not
// ConfigHash(prev_version, params). The bytes a kind does not use are
// ignored (and zeroed in the result).
func ParseConfigMsg(typ Type, p []byte) (ConfigMsg, error) {
	var m ConfigMsg
	if len(p) != ConfigMsgLen {
		return m, fmt.Errorf("%w: %v message is %d bytes, want %d", ErrLength, typ, len(p), ConfigMsgLen)
	}
	m.Kind = p[0]
	m.Version = binary.BigEndian.Uint32(p[4:8])
	m.PrevVersion = binary.BigEndian.Uint32(p[8:12])
	copy(m.Hash[:], p[16:48])
	copy(m.PrevHash[:], p[48:80])
	params := parseConfigParams(p[80:])
	switch {
	case typ == TypeConfig && (m.Kind == ConfigPropose || m.Kind == ConfigAccept),
		typ == TypeRollback && m.Kind == RollbackDone:
		if m.Kind != RollbackDone {
			m.Value = binary.BigEndian.Uint32(p[12:16])
		}
		m.Params = params
		if ConfigHash(m.Version, &m.Params) != m.Hash {
			return ConfigMsg{}, fmt.Errorf("%w: %v kind %d: hash is not SHA-256 of the serialized configuration", ErrMalformed, typ, m.Kind)
		}
	case typ == TypeConfig && m.Kind == ConfigReject:
		m.Code, m.Detail = Code(p[1]), p[2]
		m.Value = binary.BigEndian.Uint32(p[12:16])
		m.Params = params
		if m.Code != CodeConfigReject || m.Detail < RejectLocked || m.Detail > RejectNotTentative {
			return ConfigMsg{}, fmt.Errorf("%w: CONFIG REJECT with code %#02x detail %d", ErrMalformed, p[1], p[2])
		}
		if ConfigHash(m.PrevVersion, &m.Params) != m.PrevHash {
			return ConfigMsg{}, fmt.Errorf("%w: CONFIG REJECT: prev_hash is not SHA-256 of the current configuration", ErrMalformed)
		}
	case typ == TypeConfig && m.Kind == ConfigConfirm, typ == TypeRollback && m.Kind == RollbackRequest:
	default:
		return ConfigMsg{}, fmt.Errorf("%w: %v kind %d", ErrMalformed, typ, p[0])
	}
	return m, nil
}
