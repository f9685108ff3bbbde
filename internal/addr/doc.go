// Package addr holds a POOL node's identity: its long-lived X25519 key pair,
// the 256-bit address derived from the public key (draft §6, DESIGN 2.10),
// the text forms a person pastes, and the authorized_peers allow-list
// (DESIGN 2.2).
//
// The draft gives only the field widths of an address. Everything else here
// — byte order, node ID = SHA-256(key)[0:8], CRC-32/IEEE over bytes 0-27, the
// text form, key canonicity — is our decision (reference-notes §8) and is to
// be recorded in docs/PROTOCOL.md together with testdata/address-v1.json.
//
// Security notes that callers must honour (handshake.md §3):
//   - Authorize and pin peers by their full canonical PublicKey. An Address
//     is only a weak pin: its 64-bit node ID can be forged with about 2^64
//     work (2^64/N against any of N nodes), its org and subnet fields are
//     self-asserted and not bound to the key, and its CRC-32 catches typos,
//     not attackers (draft §15.11).
//   - Every public key received from the network must be Canonical, or one
//     private key shows up under several encodings, node IDs and allow-list
//     entries.
package addr
