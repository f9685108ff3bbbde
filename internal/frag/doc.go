// Package frag splits a message into fragments and reassembles fragments into
// the message, per peer, within the resource limits of draft §15.4 (P04).
//
// Draft §7 ("MTU Discovery and Fragmentation") is empty in draft-03; only the
// FRAGMENT and LAST_FRAG flags (draft §3.2), the FRAG_TIMEOUT error code
// (0x04, draft §11) and P04 exist. P04 is the binding part: per peer at most
// 16 concurrent reassembly slots, at most 5 s for an incomplete message,
// least-recently-used eviction when all slots are busy, and fragment buffer
// memory capped at 16 × MTU. Its rationale is exactly the attack this package
// is written against: "many small fragment sequences that are never
// completed". The C reference breaks the last rule (it allocates the declared
// total, up to 64 KiB, per slot: reference-notes §7.10, defect 17), and
// delivers holes as zeros; this package does neither.
//
// The package is independent of the fragment header's bytes, which
// internal/wire defines: callers pass the parsed message id, offset, total
// length and LAST_FRAG bit. It is pure bookkeeping: no I/O, no goroutines, and
// time only through Config.Now (DESIGN §3), so the 5 s timeout is tested with
// testing/synctest.
//
// What a caller needs to know, in one sentence each:
//   - Reassembler.Add stores one fragment and returns the whole message when
//     its last missing byte arrives; every refused fragment yields an error
//     wrapping one of the Err sentinels and is counted in Stats.
//   - Reassembler.Expire drops the messages older than the timeout and returns
//     their ids, for which the session reports FRAG_TIMEOUT (CLOSE code 0x04);
//     NextDeadline says when to call it next.
//   - Split cuts a message into fragments no larger than a given payload.
//   - MaxMessage(mtu) is the largest message a receiver with that MTU will
//     reassemble (16 × MTU); a sender must not fragment anything larger.
//   - Memory per peer: message bytes held ≤ 16 × MTU, plus at most Headroom
//     (2 KiB) of piece lists; at the cap, least recently used messages are
//     evicted (see Reassembler).
package frag
