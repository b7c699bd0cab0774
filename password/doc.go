// Package password hashes and verifies passwords, enforces the password policy and checks
// passwords against known breaches. It is pure: no database and no HTTP server; callers pass
// stored hashes in and get new ones back.
//
// The rules follow NIST SP 800-63B §5.1.1.2 ("memorized secrets"): a minimum length, no
// arbitrary composition rules unless a tenant asks for them, every Unicode character allowed
// and normalised (NFKC) before hashing, a check against breached (a built-in list, the range API,
// an index file) and easily guessed passwords, and a memory-hard, salted hash (Argon2id, RFC
// 9106, with OWASP's parameters) over a keyed pepper whose key is kept out of the database.
//
// No function here puts a password, or anything derived from one beyond what a protocol sends
// by design (the 5-character SHA-1 prefix of the k-anonymity range API), into an error or a log.
package password
