// Package admin is the local control channel of a running server: a small
// JSON API on a unix socket (next to the database by default) for managing
// apps, rotating secrets and reading the audit log while the server holds
// the database. Only one process can open the bbolt file, so the CLI uses
// this socket when the server runs and the file directly when it does not.
//
// # Who may connect
//
// The socket answers the server's own user and root, nobody else: it is
// created with mode 0600 under a restrictive umask (no window between bind
// and chmod), in a directory that must be ours and not writable by group or
// others (created 0700 when missing), and on Linux every connection's
// SO_PEERCRED uid is checked before a byte is read. Root is let in because
// it can read the database and the server's memory anyway. Elsewhere, where
// the standard library cannot read peer credentials, the mode and the
// directory are the guard.
//
// Secrets leave the socket only in the answers of create and rotate-secret;
// listings and reads show apps without them, and a PUT without a secret
// keeps the stored ones. Webhook dead letters keep their whole target URLs
// here: this is the operator's view (the signed HTTP API redacts them).
//
// App changes go through an [apps.Service], as the CLI's do when no server
// runs, so both store and audit them the same way. It imports storage and
// apps only; the server is reached through a reload hook.
package admin
