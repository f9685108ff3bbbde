package wire

import (
	"bytes"
	"errors"
	"testing"
)

func sampleParams() ConfigParams {
	return ConfigParams{HeartbeatMs: 1000, RekeyIntervalS: 1800, RekeyPackets: 1 << 20, MTUMax: 1400}
}

func TestConfigMsgRoundTrip(t *testing.T) {
	p := sampleParams()
	prev := ConfigParams{HeartbeatMs: 5000, RekeyIntervalS: 3600, RekeyPackets: 1 << 28}
	h, ph := ConfigHash(1, &p), ConfigHash(0, &prev)
	for _, c := range []struct {
		typ Type
		m   ConfigMsg
	}{
		{TypeConfig, ConfigMsg{Kind: ConfigPropose, Version: 1, Value: 30000, Hash: h, PrevHash: ph, Params: p}},
		{TypeConfig, ConfigMsg{Kind: ConfigConfirm, Version: 1, Hash: h, PrevHash: ph}},
		{TypeConfig, ConfigMsg{Kind: ConfigAccept, Version: 1, Value: 30000, Hash: h, PrevHash: ph, Params: p}},
		{TypeConfig, ConfigMsg{Kind: ConfigReject, Code: CodeConfigReject, Detail: RejectLocked, Version: 1, Hash: h,
			PrevHash: ph, Params: prev, Value: 0}},
		{TypeRollback, ConfigMsg{Kind: RollbackRequest, Version: 1, Hash: h, PrevHash: ph}},
		{TypeRollback, ConfigMsg{Kind: RollbackDone, Version: 0, PrevVersion: 1, Hash: ph, PrevHash: h, Params: prev}},
	} {
		b := AppendConfigMsg(nil, &c.m)
		if len(b) != ConfigMsgLen {
			t.Fatalf("%d bytes", len(b))
		}
		got, err := ParseConfigMsg(c.typ, b)
		if err != nil || got != c.m {
			t.Errorf("%v kind %d: %+v, %v", c.typ, c.m.Kind, got, err)
		}
	}
}

func TestConfigMsgRefused(t *testing.T) {
	p := sampleParams()
	good := ConfigMsg{Kind: ConfigPropose, Version: 1, Value: 30000, Hash: ConfigHash(1, &p), Params: p}
	b := AppendConfigMsg(nil, &good)
	mut := func(f func(b []byte)) []byte { c := bytes.Clone(b); f(c); return c }
	for name, c := range map[string]struct {
		typ Type
		b   []byte
	}{
		"short":           {TypeConfig, b[:99]},
		"long":            {TypeConfig, append(bytes.Clone(b), 0)},
		"kind 0":          {TypeConfig, mut(func(b []byte) { b[0] = 0 })},
		"kind 5":          {TypeConfig, mut(func(b []byte) { b[0] = 5 })},
		"rollback kind 3": {TypeRollback, mut(func(b []byte) { b[0] = 3 })},
		"hash":            {TypeConfig, mut(func(b []byte) { b[16] ^= 1 })},
		"params":          {TypeConfig, mut(func(b []byte) { b[83] ^= 1 })},
		"version":         {TypeConfig, mut(func(b []byte) { b[7] ^= 1 })},
		"reject code":     {TypeConfig, mut(func(b []byte) { b[0], b[1], b[2] = ConfigReject, 0x0c, 1 })},
	} {
		if _, err := ParseConfigMsg(c.typ, c.b); err == nil {
			t.Errorf("%s accepted", name)
		} else if !errors.Is(err, ErrLength) && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Unused bytes are ignored: the reserved byte and a CONFIRM's params.
	c := mut(func(b []byte) { b[0], b[3], b[90] = ConfigConfirm, 0xff, 0xff })
	if m, err := ParseConfigMsg(TypeConfig, c); err != nil || m.Params != (ConfigParams{}) {
		t.Errorf("CONFIRM with unused bytes set: %+v %v", m, err)
	}
}

// configOracle says whether b (type byte, then the message) is valid.
func configOracle(b []byte) bool {
	if len(b) != 1+ConfigMsgLen || (b[0] != byte(TypeConfig) && b[0] != byte(TypeRollback)) {
		return false
	}
	typ, m := Type(b[0]), b[1:]
	var p ConfigParams
	p = parseConfigParams(m[80:])
	v, pv := uint32(m[4])<<24|uint32(m[5])<<16|uint32(m[6])<<8|uint32(m[7]), uint32(m[8])<<24|uint32(m[9])<<16|uint32(m[10])<<8|uint32(m[11])
	switch {
	case typ == TypeConfig && (m[0] == 1 || m[0] == 3), typ == TypeRollback && m[0] == 2:
		h := ConfigHash(v, &p)
		return bytes.Equal(h[:], m[16:48])
	case typ == TypeConfig && m[0] == 4:
		h := ConfigHash(pv, &p)
		return m[1] == 0x06 && m[2] >= 1 && m[2] <= 5 && bytes.Equal(h[:], m[48:80])
	case typ == TypeConfig && m[0] == 2, typ == TypeRollback && m[0] == 1:
		return true
	}
	return false
}

// FuzzParseConfig: the first byte is the packet type (CONFIG or ROLLBACK),
// the rest the message.
func FuzzParseConfig(f *testing.F) {
	p := sampleParams()
	f.Add(append([]byte{byte(TypeConfig)}, AppendConfigMsg(nil, &ConfigMsg{Kind: ConfigPropose, Version: 1, Value: 30000, Hash: ConfigHash(1, &p), Params: p})...))
	f.Add(append([]byte{byte(TypeConfig)}, AppendConfigMsg(nil, &ConfigMsg{Kind: ConfigReject, Code: CodeConfigReject, Detail: RejectBusy, PrevHash: ConfigHash(0, &p), Params: p})...))
	f.Add(append([]byte{byte(TypeRollback)}, AppendConfigMsg(nil, &ConfigMsg{Kind: RollbackRequest, Version: 1})...))
	f.Add([]byte{byte(TypeConfig), 1, 0, 0})
	f.Add(append([]byte{byte(TypeRollback)}, garbage(ConfigMsgLen, 7)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 1 {
			return
		}
		m, err := ParseConfigMsg(Type(b[0]), b[1:])
		if want := configOracle(b); (err == nil) != want {
			t.Fatalf("ParseConfigMsg(%x) error = %v, oracle accepts = %v", b, err, want)
		}
		if err != nil {
			checkSentinel(t, err)
			return
		}
		re := AppendConfigMsg(nil, &m)
		again, err := ParseConfigMsg(Type(b[0]), re)
		if err != nil || again != m {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}
