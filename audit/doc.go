// Package audit is the pure core of Tutela's tamper-evident audit log: the canonical encoding of
// an event, the RFC 6962 Merkle tree over those encodings (hashing and proofs from
// golang.org/x/mod/sumdb/tlog), signed checkpoints (C2SP tlog-checkpoint bodies in C2SP signed
// notes, Ed25519 via golang.org/x/mod/sumdb/note), whole-log verification and auditor bundles.
// It touches no database and no network: storage sits behind [HashStore] and [Source].
//
// Threat model. An attacker who can write to the database (a rogue DBA, a stolen backup that is
// later restored, SQL injection elsewhere) may edit, delete, reorder or insert audit rows, and may
// rewrite the stored tree hashes and checkpoints to match. What such an attacker cannot do is
// sign a checkpoint without the log's private key, nor change a checkpoint that was published
// outside the database (to a checkpoint directory, a witness, an auditor). [Verify] therefore
// recomputes every leaf and every tree hash from the stored content and checks the result against
// every signed checkpoint it is given; the published ones catch a wholesale rewrite even by
// someone holding the real key, because a log must never sign two inconsistent trees (C2SP
// tlog-checkpoint, "Signatures").
//
// The layers are checked separately so a report says which layer was touched:
//
//	content  ─RecordHash→  leaf hash  ─tlog.StoredHashes→  tree hashes  ─TreeHash→  root  ─note→  signature
//	(content_mismatch)     (hash_mismatch)                  (checkpoint_mismatch)         (bad_signature)
//
// Performance. Verify streams the entries once and holds the recomputed tree in memory (about 64
// bytes per entry); on 2 cores it checks 1,000,000 events of ~500 bytes in about 1 s.
// Benchmarks: go test -run '^$' -bench . -benchtime 1x ./audit (BenchmarkVerify1M,
// BenchmarkInclusionProof, BenchmarkAppend).
package audit
