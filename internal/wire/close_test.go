package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

var allCodes = []Code{CodeNoError, CodeAuthFail, CodeDecryptFail, CodeSeqInvalid, CodeFragTimeout,
	CodeMTUExceeded, CodeConfigReject, CodeRekeyFail, CodeJournalFull, CodeOverload,
	CodeVersionMismatch, CodeVersionDowngrade, CodeProtocolError}

func TestCloseRoundTrip(t *testing.T) {
	reasons := []string{"", "bye", "naïve café", "日本語の理由", "😀 emoji", strings.Repeat("x", MaxReasonLen),
		strings.Repeat("€", MaxReasonLen/3)}
	codes := append(append([]Code{}, allCodes...), 0x0D, 0x7F, 0xFF)
	for _, code := range codes {
		for _, scope := range []Scope{ScopeSession, ScopeChannelFIN, ScopeChannelRST} {
			for i, reason := range reasons {
				in := Close{Code: code, Scope: scope, Detail: uint16(code)<<8 | uint16(i), Reason: reason}
				b := AppendClose(nil, &in)
				if len(b) != CloseFixedLen+len(reason) {
					t.Fatalf("%+v: %d bytes", in, len(b))
				}
				if b[0] != byte(code) || b[1] != byte(scope) || b[2] != byte(in.Detail>>8) || b[3] != byte(in.Detail) ||
					!allZero(b[4:8]) {
					t.Fatalf("%+v: fixed part %x", in, b[:8])
				}
				got, err := ParseClose(b)
				if err != nil {
					t.Fatalf("%+v: %v", in, err)
				}
				if got != in {
					t.Fatalf("round trip: got %+v, want %+v", got, in)
				}
			}
		}
	}
	// Append keeps the prefix.
	b := AppendClose([]byte("pre"), &Close{Code: CodeOverload, Reason: "r"})
	if string(b[:3]) != "pre" || len(b) != 3+CloseFixedLen+1 {
		t.Errorf("AppendClose with prefix = %x", b)
	}
}

func TestCloseReasonTruncation(t *testing.T) {
	runes := []string{"é", "€", "😀"} // 2, 3 and 4 bytes
	for _, r := range runes {
		// Place the rune so that it starts at every offset that makes it
		// straddle, end at, or just precede the limit.
		for start := MaxReasonLen - len(r) - 1; start <= MaxReasonLen; start++ {
			reason := strings.Repeat("a", start) + r + strings.Repeat("b", 5)
			b := AppendClose(nil, &Close{Code: CodeProtocolError, Reason: reason})
			got := string(b[CloseFixedLen:])
			var want string
			switch {
			case start+len(r) <= MaxReasonLen: // rune fits whole
				want = reason[:min(len(reason), MaxReasonLen)]
			default: // rune straddles or starts at the limit: cut before it
				want = reason[:start]
			}
			if got != want {
				t.Errorf("rune %q at %d: reason cut to %d bytes, want %d", r, start, len(got), len(want))
			}
			if len(got) > MaxReasonLen || !utf8.ValidString(got) || !strings.HasPrefix(reason, got) {
				t.Errorf("rune %q at %d: bad reason (%d bytes, valid %v)", r, start, len(got), utf8.ValidString(got))
			}
			c, err := ParseClose(b)
			if err != nil || c.Reason != got {
				t.Errorf("rune %q at %d: ParseClose = %+v, %v", r, start, c, err)
			}
		}
	}
	// A reason made only of multibyte runes.
	for _, r := range runes {
		reason := strings.Repeat(r, 2*MaxReasonLen)
		b := AppendClose(nil, &Close{Reason: reason})
		got := string(b[CloseFixedLen:])
		if want := MaxReasonLen / len(r) * len(r); len(got) != want || !utf8.ValidString(got) {
			t.Errorf("all-%q reason cut to %d bytes, want %d", r, len(got), want)
		}
	}
	// Exactly MaxReasonLen is kept; one more byte is cut.
	for _, n := range []int{MaxReasonLen, MaxReasonLen + 1, 10 * MaxReasonLen} {
		b := AppendClose(nil, &Close{Reason: strings.Repeat("z", n)})
		if len(b) != CloseFixedLen+MaxReasonLen {
			t.Errorf("reason of %d bytes: CLOSE of %d bytes", n, len(b))
		}
	}
}

// TestAppendCloseInvalidUTF8: a CLOSE must always be sendable, so an
// invalid UTF-8 reason is repaired, never sent as bytes ParseClose refuses.
func TestAppendCloseInvalidUTF8(t *testing.T) {
	for _, reason := range []string{"\xff", "ok\xc3", strings.Repeat("a", MaxReasonLen-1) + "\xff"} {
		b := AppendClose(nil, &Close{Code: CodeProtocolError, Reason: reason})
		if _, err := ParseClose(b); err != nil {
			t.Errorf("AppendClose(reason %q) is not parseable: %v", reason, err)
		}
	}
}

func TestParseCloseRejects(t *testing.T) {
	good := AppendClose(nil, &Close{Code: CodeAuthFail, Scope: ScopeChannelRST, Detail: 7, Reason: "reason"})
	mut := func(f func([]byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := map[string]struct {
		b   []byte
		err error
	}{
		"scope 3":         {mut(func(b []byte) []byte { b[1] = 3; return b }), ErrMalformed},
		"scope 0xff":      {mut(func(b []byte) []byte { b[1] = 0xff; return b }), ErrMalformed},
		"bad byte":        {mut(func(b []byte) []byte { return append(b, 0xff) }), ErrMalformed},
		"cut rune":        {mut(func(b []byte) []byte { return append(b, 0xe2, 0x82) }), ErrMalformed},
		"surrogate":       {mut(func(b []byte) []byte { return append(b, 0xed, 0xa0, 0x80) }), ErrMalformed},
		"overlong NUL":    {mut(func(b []byte) []byte { return append(b, 0xc0, 0x80) }), ErrMalformed},
		"bad first byte":  {mut(func(b []byte) []byte { return append(b[:8], 0x80) }), ErrMalformed},
		"too long":        {append(good[:8:8], bytes.Repeat([]byte("a"), MaxReasonLen+1)...), ErrLength},
		"much too long":   {append(good[:8:8], bytes.Repeat([]byte("a"), 4096)...), ErrLength},
		"empty":           {nil, ErrLength},
		"fixed part only": {good[:7], ErrLength},
	}
	for n := 0; n < CloseFixedLen; n++ {
		if _, err := ParseClose(good[:n]); !errors.Is(err, ErrLength) {
			t.Errorf("%d bytes: error = %v, want ErrLength", n, err)
		}
	}
	for name, tc := range tests {
		if _, err := ParseClose(tc.b); !errors.Is(err, tc.err) {
			t.Errorf("%s: error = %v, want %v", name, err, tc.err)
		}
	}
	// Boundaries that must pass.
	for _, n := range []int{0, 1, MaxReasonLen} {
		b := append(good[:8:8], bytes.Repeat([]byte("a"), n)...)
		if c, err := ParseClose(b); err != nil || len(c.Reason) != n {
			t.Errorf("reason of %d bytes: %+v, %v", n, c, err)
		}
	}
}

func TestParseCloseIgnoresReserved(t *testing.T) {
	want := Close{Code: CodeOverload, Scope: ScopeChannelFIN, Detail: 0xbeef, Reason: "busy"}
	b := AppendClose(nil, &want)
	for i := 4; i < 8; i++ {
		for _, m := range flipMasks {
			bb := bytes.Clone(b)
			bb[i] ^= m
			got, err := ParseClose(bb)
			if err != nil || got != want {
				t.Errorf("reserved byte %d ^ %#02x: %+v, %v", i, m, got, err)
			}
		}
	}
	b[4], b[5], b[6], b[7] = 0xff, 0xff, 0xff, 0xff
	if got, err := ParseClose(b); err != nil || got != want {
		t.Errorf("all reserved set: %+v, %v", got, err)
	}
}

func TestCodeString(t *testing.T) {
	want := []string{"NO_ERROR", "AUTH_FAIL", "DECRYPT_FAIL", "SEQ_INVALID", "FRAG_TIMEOUT", "MTU_EXCEEDED",
		"CONFIG_REJECT", "REKEY_FAIL", "JOURNAL_FULL", "OVERLOAD", "VERSION_MISMATCH", "VERSION_DOWNGRADE",
		"PROTOCOL_ERROR"}
	for i, c := range allCodes {
		if uint8(c) != uint8(i) {
			t.Fatalf("code %d has value %d", i, c)
		}
		if c.String() != want[i] {
			t.Errorf("Code(%#x).String() = %q, want %q", uint8(c), c.String(), want[i])
		}
	}
	for c, s := range map[Code]string{0x0D: "CODE(0x0d)", 0x10: "CODE(0x10)", 0x7F: "CODE(0x7f)", 0x80: "APPLICATION(0x80)", 0xFF: "APPLICATION(0xff)"} {
		if c.String() != s {
			t.Errorf("Code(%#x).String() = %q, want %q", uint8(c), c.String(), s)
		}
	}
}
