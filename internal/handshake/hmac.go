package handshake

import (
	"crypto/hmac"
	"crypto/sha256"
)

func hmacParts(key []byte, parts ...[]byte) [32]byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	var out [32]byte
	m.Sum(out[:0])
	return out
}
