// Package config is the node's versioned configuration store: every
// configuration that was ever live is kept, numbered and hashed; a new one
// is applied atomically; an earlier one is restored byte for byte, checked
// against its stored SHA-256 (draft §9.4); and a change can be applied
// "commit confirmed", like Junos' `commit confirmed`: unless Confirm is
// called before a deadline, the store puts the previous version back by
// itself, even across a restart of the process.
//
// This package is the local half of draft §9. The peer CONFIG / confirm /
// ROLLBACK packets, whose silence-means-confirmation rule (§15.7, P07) is the
// opposite of the local one here, are built on top of it elsewhere.
//
// # On-disk layout
//
// A Store owns one directory (Open's dir):
//
//	<dir>/node.toml                      the live file (Options.File)
//	<dir>/config-history/                Options.HistoryDir, mode 0700
//	    000001.toml                      the exact bytes of version 1 (the live
//	    000001.json                      file's extension); its metadata
//	    000002.toml, 000002.json, ...
//	    pending.json                     only while a commit-confirmed change
//	                                     awaits Confirm
//
// A version's metadata (000042.json) holds its number, the SHA-256 of its
// bytes, the SHA-256 of version 41 (the hashes form a chain by number), the
// time, the kind of change (apply, apply-confirmed, rollback, auto-rollback,
// recovered), the author and comment, the size and, for a rollback, the
// version it restored. pending.json holds the tentative version, the
// version to go back to and its hash, and the deadline as wall-clock time,
// so a restarted process still honours it.
//
// Every file is written the same way: a temporary file in the same
// directory, fsync, rename over the target, fsync of the directory. The
// bytes of a version are written before its metadata, the metadata before
// pending.json, and pending.json before the live file, so a crash at any
// point leaves either the old state or something Open reconciles (see Open).
// Temporary files a crash left behind are removed by Open.
//
// # Versions
//
// Version numbers only grow. A rollback does not rewind the history: it
// records a new version whose bytes are those of the version it restores
// (RollbackOf names it), so the history is append-only and every
// configuration that was ever live can be found again. Only the last
// Options.Keep versions (DefaultKeep, 100) are kept; older ones are deleted
// after each change.
//
// # Integrity
//
// Before a stored version is used (Get, Diff, Rollback, the automatic
// rollback), its bytes are hashed and compared with the hash in its
// metadata and with the previous-version hash its successor holds; after a
// rollback writes the live file, the file is read back and hashed again. A
// mismatch is an *IntegrityError naming the file and the version, and
// nothing is written. Someone able to rewrite the bytes and every later
// metadata file consistently is not detected here; the change journal,
// which records each version's hash, is what catches that.
//
// # Concurrency and processes
//
// A Store is safe for concurrent use; changes are serialised (one Apply,
// Rollback or Confirm at a time). Only one process may open a directory:
// the node owns the store and the `pool config` commands reach it through
// the node's control socket. Nothing enforces this yet.
package config
