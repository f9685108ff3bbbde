package handshake

import (
	"crypto/ecdh"
	"testing"

	"github.com/pool-go/pool/internal/seal"
	"github.com/pool-go/pool/internal/wire"
)

// TestRekeyVectors: both sides of both golden rekeys (client-initiated
// 0→1, server-initiated 1→2) derive M's keys and R_{n+1} byte for byte,
// and the initiator and responder agree.
func TestRekeyVectors(t *testing.T) {
	v := loadVectors(t)
	priv := func(path string) *ecdh.PrivateKey {
		k, err := ecdh.X25519().NewPrivateKey(v.Hex(t, path))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keysOf := func(prefix string) seal.DirectionKeys {
		return seal.DirectionKeys{Enc: [32]byte(v.Hex(t, prefix+".enc")), HMAC: [32]byte(v.Hex(t, prefix+".hmac")),
			Seq: [32]byte(v.Hex(t, prefix+".seq"))}
	}
	cS, sS := priv("inputs.client_static_private"), priv("inputs.server_static_private")
	pub := func(k *ecdh.PrivateKey) [32]byte { return [32]byte(k.PublicKey().Bytes()) }
	for _, c := range []struct {
		name, keys, next string
		role             byte
		sI, sR           *ecdh.PrivateKey
	}{
		{"rekey", "traffic_keys_epoch1", "R1", RekeyByClient, cS, sS},
		{"rekey_2_server_initiated", "traffic_keys_epoch2", "R2", RekeyByServer, sS, cS},
	} {
		eI, eR := priv(c.name+".initiator_ephemeral_private"), priv(c.name+".responder_ephemeral_private")
		epoch := uint32(v.Num(t, c.name+".new_epoch"))
		init := &wire.Rekey{Kind: wire.RekeyInit, Epoch: epoch, E: pub(eI)}
		ack := &wire.Rekey{Kind: wire.RekeyAck, Epoch: epoch, E: pub(eR)}
		eq(t, c.name+" INIT plaintext", wire.AppendRekey(nil, init), v.Hex(t, c.name+".REKEY_INIT_plaintext"))
		eq(t, c.name+" ACK plaintext", wire.AppendRekey(nil, ack), v.Hex(t, c.name+".REKEY_ACK_plaintext"))
		exchange := func() *RekeyExchange {
			r := [32]byte(v.Hex(t, c.name+".R_prev"))
			return &RekeyExchange{SID: [16]byte(v.Hex(t, "cookie.SID")), Ratchet: &r, Epoch: epoch, Role: c.role, Init: init, Ack: ack}
		}
		xi := exchange()
		ki, err := xi.DeriveAsInitiator(eI, c.sI, pub(c.sR))
		if err != nil {
			t.Fatal(err)
		}
		if *xi.Ratchet != [32]byte{} {
			t.Errorf("%s: R_n not zeroed after use", c.name)
		}
		kr, err := exchange().DeriveAsResponder(eR, c.sR, pub(c.sI))
		if err != nil {
			t.Fatal(err)
		}
		if ki != kr {
			t.Fatalf("%s: initiator and responder derived different keys", c.name)
		}
		if ki.C2S != keysOf(c.name+"."+c.keys+".c2s") || ki.S2C != keysOf(c.name+"."+c.keys+".s2c") {
			t.Errorf("%s: traffic keys differ from the vectors", c.name)
		}
		eq(t, c.name+" R_{n+1}", ki.Rekey[:], v.Hex(t, c.name+"."+c.next))

		// The role byte and each static key matter: a rekey claimed by the
		// other role, or answered by another identity, yields other keys.
		x := exchange()
		x.Role ^= 3
		if k, _ := x.DeriveAsInitiator(eI, c.sI, pub(c.sR)); k == ki {
			t.Errorf("%s: role byte not bound", c.name)
		}
		other, _ := ecdh.X25519().GenerateKey(nil)
		if k, _ := exchange().DeriveAsResponder(eR, other, pub(c.sI)); k == ki {
			t.Errorf("%s: responder's static key not mixed in", c.name)
		}
		if k, _ := exchange().DeriveAsInitiator(eI, other, pub(c.sR)); k == ki {
			t.Errorf("%s: initiator's static key not mixed in", c.name)
		}
	}
}
