// Package admin is the local control channel of a running server: a small
// JSON API on a unix socket (mode 0600, next to the database) for managing
// apps, rotating secrets and reading the audit log while the server holds
// the database. Only one process can open the bbolt file, so the CLI uses
// this socket when the server runs and the file directly when it does not.
//
// App changes go through an [apps.Service], as the CLI's do when no server
// runs, so both store and audit them the same way. It imports storage and
// apps only; the server is reached through a reload hook.
package admin
