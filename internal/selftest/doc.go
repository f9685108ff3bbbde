// Package selftest implements POOL's runtime-integrity self-checks
// (draft-davis-pool-03 §17.3): known-answer tests of every cryptographic
// primitive POOL uses, re-executed periodically, and continuous statistical
// health tests on the randomness the node draws.
//
// # Why
//
// §17.3 assumes that running code can be modified after it was loaded and
// verified (live patching, "overlay" interception, firmware tampering) and
// catalogues, among others, RT-C02 (authentication verification overlaid to
// always succeed), RT-C05 (key derivation replaced with attacker-known
// output) and RT-C06 (compromise of the random number generator). Its tenet
// T2 is behavioural verification: check what the code does, not what it is.
// The draft's implementation-level mechanisms include "periodic
// re-execution of known-answer self-tests with reference-digest comparison"
// and "continuous statistical health tests on all randomness"; a node that
// fails any of them "marks itself compromised, alerts through channels
// outside the potentially compromised code path, and refuses new sessions".
// This package provides those three pieces:
//
//   - [Run] executes the known-answer tests (KATs): SHA-256, HMAC-SHA256,
//     HKDF-SHA256, ChaCha20-Poly1305, X25519, POOL's key schedule and POOL's
//     packet protection, each against published vectors compiled into this
//     file set, and each including the negative check that a forgery is
//     refused. The primitives under test are the real ones the protocol
//     calls (crypto/sha256, crypto/hmac, crypto/hkdf, crypto/ecdh,
//     golang.org/x/crypto/chacha20poly1305, internal/seal); nothing here
//     re-implements a primitive.
//   - [Source] is an [io.Reader] over crypto/rand that runs the NIST
//     SP 800-90B §4.4 Repetition Count Test and Adaptive Proportion Test on
//     every byte it hands out and fails closed.
//   - [Monitor] runs [Run] at start and periodically, watches a [Source],
//     and latches the node's health so that session admission can consult
//     [Monitor.Healthy].
//
// # Honest limits
//
// As §17.3 says, a verifier co-located with the code under test can itself
// be overlaid, and tampering that emulates correct behaviour on the fixed
// vectors (or only misbehaves on live traffic) is invisible to a KAT. The
// health tests catch gross failures of the random source (stuck output,
// runs, a value that recurs far too often); they cannot tell a compromised
// deterministic generator, whose output looks uniform, from a good one.
// These checks raise the bar and catch faults; they do not prove integrity.
package selftest
