// Package cli is sockudo's command line: "sockudo apps", "audit",
// "webhooks" (dead-letters, queues), "push" (credentials, devices,
// publishes, dead-letters, limits), the output of "doctor" (whose checks
// are main's), help, version, the hidden healthcheck, and the dispatch to
// the server, which package main gives it in a [Program].
//
// The admin commands reach a running server through its admin
// socket (package admin); with no server running they open the database
// and change it through the same [apps.Service], so every change is audited
// either way. Every command takes --json and then prints one JSON document
// on stdout. Exit codes (exitOK … exitNotFound in command.go): 0 success,
// 1 failure, 2 usage error or invalid input, 3 not found. "doctor" prints
// the findings of package main's checks ([Program.Doctor]).
//
// It reads no environment itself: main hands it the [Settings] it parsed
// from the variables its Config describes. It imports admin, apps, storage
// and webhooks (for ParseTargets and Configured); nothing imports it but
// main.
package cli
