// Package storage is sockudo's durable state, kept in one bbolt file: the
// apps (tenants), the webhook queue and dead letters, the audit log and
// rate-limit counters and push devices. It imports nothing of ours; main, server, webhooks and push
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
// Created on first use: audit_changes and audit_refusals (sequence -> JSON
// of [AuditEntry], each bucket's own sequence its count, entries numbered
// from the sequence of audit, which keeps the entries written before the two
// were split), counters
// (rate-limit windows), webhook_occupancy (open channels and members of
// apps with vacated/removed webhooks, reported after a crash),
// push_credentials (app id -> { provider -> { version -> JSON of
// [PushCredential] } }: each version's sealed credential, encrypted by
// package push, and its metadata).
//
// Push devices (push_devices.go, also created on first use): push_devices
// (app \0 device -> JSON of [Device]) and its indexes push_device_tokens
// (app \0 platform \0 token hash -> device id), push_device_users,
// push_device_interests, push_device_channels (app \0 user|interest|channel
// \0 device -> empty), push_user_interests (app \0 user \0 interest) and
// push_device_counts (app -> its number of devices, for the per-app limit).
// Index keys end with the device id, so a list is a prefix scan and its
// cursor the last id; every write updates only the index entries that
// changed, in the device's transaction.
//
// Push publishes (push_publishes.go, created on first use): push_publishes
// (app \0 publish -> JSON of [PushPublish]) with its indexes
// push_publish_states (app \0 state \0 publish), push_publish_idem (app \0
// idempotency key -> creation ms + publish id, honoured for
// [IdempotencyWindow]) and push_publish_sched (send_at ms + app \0 publish,
// the scheduled ones); push_publish_nums (num -> app \0 publish: a 16-byte
// delivery key is the publish's num and the delivery's seq),
// push_deliveries (num + seq -> a compact JSON delivery),
// push_delivery_due (ms + delivery key: a pending delivery
// at its next attempt, an inflight one at its lease expiry, so a worker
// that died leaves its deliveries claimable again) and push_delivery_dead
// (app \0 dead id -> delivery key, bounded per app). A publish and its
// deliveries are written in one transaction; a delivery's outcome and its
// publish's counters and state in one transaction.
//
// The push audit trail (push_audit.go, created on first use): push_audit
// (app \0 id -> JSON of [PushAuditEntry]) and push_audit_chains (app -> the
// chain's head and retention anchor). Each app's entries are one sha256
// hash chain; [DB.VerifyPushAudit] checks it and [DB.PurgePushAudit] drops
// the oldest entries while keeping it verifiable.
//
// The webhook queue is bounded by the dispatcher's retry window and by a
// per-target maximum depth (the oldest entries become dead letters); the dead
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
