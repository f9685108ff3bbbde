// Package journal implements POOL's change journal (draft-davis-pool-03
// §10, §11; DESIGN §2.7): a per-node, append-only, hash-chained,
// crash-safe log of protocol state changes and error conditions.
//
// docs/JOURNAL.md specifies the file format byte for byte, with a worked
// example that TestWorkedExample checks.
//
//   - [Open] opens (or creates) the file, verifies it, repairs a torn last
//     record (crash during an append) with a warning and a [TypeRecovery]
//     entry, and refuses any other defect with a [*CorruptError].
//   - [Journal.Append] returns only after the record is written and
//     fsynced ([Options.GroupCommit] lets concurrent appenders share an
//     fsync); [Journal.Note] aggregates identical events per window so a
//     flood costs O(1) entries; lack of space wraps [ErrFull]
//     (JOURNAL_FULL, 0x08).
//   - [Journal.Head] / [Journal.HeadTruncated] give the chain head for
//     heartbeat telemetry; [Sink] implementations ([FileSink],
//     [SyslogSink], [HTTPSink]) publish it outside the node.
//   - [Verify], [NewReader] and [Entries] read a journal for
//     `pool journal verify|show|tail|export`.
//
// # Honest limits
//
// The chain makes any change to an entry visible in every later hash, but
// someone who can rewrite the file can rewrite the whole chain after the
// change, and can drop the newest entries (a cut at a record boundary is
// indistinguishable from a journal that simply ended there; a cut inside
// the last record, or a changed byte in it, looks like a crash and is
// repaired). Only a head held outside the node — published by a Sink or
// carried to a peer in telemetry — detects those.
package journal
