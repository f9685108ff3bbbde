// Package pmtu is the path-MTU discovery state machine of one POOL session:
// which DISCOVER probe to send and when, what an acknowledgment proves, and
// the MTU the session may use. It does no I/O, starts no goroutine and reads
// time only through Config.Now (DESIGN §3), so its timers are tested with
// testing/synctest.
//
// # Where the rules come from
//
// Draft §7 ("MTU Discovery and Fragmentation") is empty in draft-03; it only
// promises active authenticated probing. Draft §15.5 (P05) binds it: "DISCOVER
// packets used for MTU probing MUST be rate-limited to at most one probe per
// second per peer. Probe responses MUST only be accepted from peers with
// established sessions, authenticated by the session HMAC." Its rationale is
// probe storms amplified by spoofing. PROTOCOL.md §7.10 designs the rest —
// the PROBE / PROBE_ACK format (internal/wire/discover.go), the 2 s timeout,
// three unanswered probes before a size counts as too big, the binary search
// between 512 bytes and the link limit to the exact byte, the 60 s
// re-probe, re-validation after loss, and no probing over the TCP overlay —
// and this package follows it step by step. Where §7.10 is silent the choice
// and its reason are written next to the code that makes it (look for
// "§7.10 is silent").
//
// # What the caller does
//
// The session's owner goroutine drives one Prober (it is not safe for
// concurrent use, like the rest of the session's state):
//
//   - It calls NextProbe when the session starts, whenever the wait that
//     NextProbe last returned has passed, and after OnAck and OnLoss. If ok,
//     it seals and sends a PROBE of exactly that size and id at once
//     (wire.AppendDiscover pads it; the packet is never fragmented, §7.11).
//     NextProbe is also the package's tick: probe timeouts are noticed there.
//   - For every authenticated DISCOVER PROBE_ACK it calls OnAck. The package
//     never sees unauthenticated input: the session opens the packet (AEAD
//     and HMAC, PROTOCOL.md §6.2) before parsing it, so a spoofed ack dies
//     there, which is P05's second sentence. OnAck then refuses every ack
//     that is not for the one outstanding probe (late, unknown id, other
//     size); a refusal is counted and is not a protocol error (§7.10).
//   - When its telemetry shows outbound loss (§7.9.3) it calls OnLoss, and
//     the Prober re-validates the current MTU.
//   - It sends DATA segments and fragments no larger than MTU() (plaintext ≤
//     MTU − 96, §7.11) and reports MTU() as mtu_current (§7.9.1), saturated
//     at 65535.
//   - It answers the peer's probes through a Responder, which implements the
//     MAY of §7.10: probes arriving faster than one per second on average,
//     after a burst of four, are dropped without error.
//
// Over a reliable stream (Config.Reliable, the TCP overlay) nothing is probed:
// TCP finds the path MTU beneath POOL and MTU() is the transport's limit at
// once (§7.10, "Over the TCP overlay").
//
// # Safety properties (each has a test)
//
//   - MTU() starts at the floor (512) and rises only on an accepted ack: it
//     is always the floor, the link limit of a reliable transport, or a size
//     that was acknowledged. Nothing above it is sent as DATA.
//   - At most one probe is outstanding and probes are handed out at least
//     MinInterval (≥ 1 s, P05) apart, retries included, however often
//     NextProbe is called; a Gate extends this to every session with one peer.
//   - A single lost probe never lowers the MTU: a size is too big only after
//     three unanswered probes of it.
package pmtu
