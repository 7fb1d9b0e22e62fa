package protocol

import (
	"errors"
	"strings"
	"testing"
)

// errAny in a test case means "some error, whatever it is": the decoders
// return ad-hoc errors (their text goes to the client) besides the
// sentinels, which are checked with errors.Is.
var errAny = errors.New("any error")

// checkErr fails t unless err matches want: nil means success, errAny means
// any error, anything else is compared with errors.Is.
func checkErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want == nil:
	case err == nil:
		t.Fatalf("got no error, want %v", want)
	case want == errAny:
	case !errors.Is(err, want):
		t.Fatalf("got error %q, want %q", err, want)
	}
}

// long returns a string of n copies of c.
func long(c string, n int) string { return strings.Repeat(c, n) }
