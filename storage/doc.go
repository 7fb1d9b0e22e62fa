// Package storage is sockudo's durable state, kept in one bbolt file: the
// apps (tenants), the webhook queue and dead letters, the audit log and
// rate-limit counters (push devices later). It imports nothing of ours; main, server, webhooks and push
// import it.
//
// # Layout
//
// [Open] creates every bucket, so the other methods never check for one:
//
//	apps      app id  -> JSON of [App]
//	app_keys  app key -> app id (the unique index behind [DB.AppByKey])
//	meta      "schema_version" -> decimal schema version
//	webhook_queue  app id + NUL + target URL -> { entry id -> encoded [WebhookEntry] }
//	webhook_dead   app id -> { dead-letter id -> JSON of [DeadLetter] }
//
// Created on first use: audit (sequence -> JSON of [AuditEntry]), counters
// (rate-limit windows), webhook_occupancy (open channels and members of
// apps with vacated/removed webhooks, reported after a crash),
// push_credentials (app id -> { provider -> { version -> JSON of
// [PushCredential] } }: each version's sealed credential, encrypted by
// package push, and its metadata).
//
// The webhook queue is bounded by the dispatcher's retry window; the dead
// letters by a per-app maximum, oldest dropped first. A nested bucket's
// sequence holds its entry count, so sizes are known without a scan.
//
// # Concurrency
//
// A [DB] is safe for concurrent use. Writes run in bbolt's managed Update
// transactions, one at a time; reads run in View transactions and do not block
// one another. The file is locked for the life of the DB, so exactly one
// process can have it open: a second [Open] fails with [ErrLocked] after
// [Options.Timeout].
//
// # Caveats
//
// Bytes returned by bbolt are valid only inside the transaction that read
// them: they point into the memory-mapped file, and touching them after the
// transaction ends can fault or read another page. Every method here copies
// what it returns (JSON decoding and string conversion both copy) before its
// transaction ends, and nothing exported hands out a *bbolt.Tx or raw bytes.
// Code added here must keep that rule, and must never do network I/O inside
// an Update: it holds the only write lock for as long as it runs.
package storage
