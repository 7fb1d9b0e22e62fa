// Package apps is what sockudo knows about its tenants beyond storing them:
//
//   - [Settings], the one table of per-app flags and limits. Each row names
//     the setting's CLI flag, its SOCKUDO_DEFAULT_APP_* variable, usage,
//     default, field of [storage.App] and bounds; the default app's
//     environment, its validation and the "sockudo apps" flags are all driven
//     by it, so a new per-app setting is one row.
//   - the checks of ids, keys and secrets ([IdentProblem], [SecretProblem]).
//   - [Service], the one way an app is changed: store the change, then audit
//     it. The admin socket (a running server) and the CLI (a stopped one)
//     both go through it.
//
// It imports storage and nothing else of ours; main, cli and admin import it.
package apps
