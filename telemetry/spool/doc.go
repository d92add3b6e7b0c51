// Package spool is the runtime's durable store-and-forward queue for
// outgoing MQTT messages.
//
// A spool is a directory of append-only segment files. Each record carries a
// magic marker, its length and a CRC-32C of its contents, so a record torn by
// a crash or damaged on disk is detected, skipped with a warning, and the
// records after it are still found. Appends are buffered and made durable by
// Sync (one fsync per batch). Acknowledgements go to a separate append-only
// log; a segment file is removed once every record in it is acknowledged or
// dropped. The spool is bounded by bytes (the oldest segment is dropped) and
// by age (expired records are dropped); every dropped record is counted.
//
// Faults lose only what they must, and say so: a write that fails (disk
// full, short write, I/O error) drops and counts exactly the records it did
// not write in full and keeps the offsets of later appends right; a record
// that fails its checks when read is dropped and counted, never returned.
//
// A Spool is safe for concurrent use. Only one process may open a directory
// at a time.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package spool
