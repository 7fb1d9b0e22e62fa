package storage

import "errors"

// Sentinel errors. Methods wrap them with context ("storage: get app 42: not
// found"); test for them with [errors.Is].
var (
	// ErrNotFound is returned when no app has the requested id or key.
	ErrNotFound = errors.New("not found")

	// ErrExists is returned by [DB.CreateApp] when an app with that id exists.
	ErrExists = errors.New("app id already exists")

	// ErrKeyInUse is returned when an app's key already belongs to another app.
	// Keys are unique because clients connect by key (/app/{key}).
	ErrKeyInUse = errors.New("app key belongs to another app")

	// ErrLocked is returned by [Open] when another process (usually a running
	// sockudo server) holds the database file's lock.
	ErrLocked = errors.New("database locked")

	// ErrInvalid is returned when an app lacks a required field: its id, key
	// or secret is empty.
	ErrInvalid = errors.New("invalid")

	// ErrClosed is returned by every method called after [DB.Close].
	ErrClosed = errors.New("database closed")
)
