// Package tlscert serves a TLS certificate from files and reloads it when
// the files change, so certificates can be renewed without a restart.
package tlscert

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// Reloader loads a certificate and key pair from PEM files and reloads them
// when either file's modification time or size changes. It is safe for
// concurrent use; plug GetCertificate into a tls.Config.
type Reloader struct {
	certPath, keyPath string
	// checkEvery bounds how often the files are stat'ed: at most once per
	// interval, on a handshake.
	checkEvery time.Duration
	now        func() time.Time

	mu        sync.Mutex // guards the fields below
	cert      *tls.Certificate
	stamp     string // modification times and sizes of both files
	checkedAt time.Time
	lastErr   error
}

// New loads the pair once and returns a Reloader, or the load error.
func New(certPath, keyPath string) (*Reloader, error) {
	r := &Reloader{certPath: certPath, keyPath: keyPath, checkEvery: time.Second, now: time.Now}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Reloader) fileStamp() (string, error) {
	var s string
	for _, p := range []string{r.certPath, r.keyPath} {
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("tlscert: %w", err)
		}
		s += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return s, nil
}

// reload reads the pair if the files changed. Lock: r.mu held, or r not
// yet shared.
func (r *Reloader) reload() error {
	stamp, err := r.fileStamp()
	if err != nil {
		return err
	}
	if stamp == r.stamp && r.cert != nil {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(r.certPath, r.keyPath)
	if err != nil {
		return fmt.Errorf("tlscert: load %s / %s: %w", r.certPath, r.keyPath, err)
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

// GetCertificate returns the current certificate, reloading it first if
// the files changed. A pair that fails to load (say, half-written during a
// renewal) keeps the previous certificate in service; Err reports it.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checkedAt) >= r.checkEvery {
		r.checkedAt = now
		r.lastErr = r.reload()
	}
	return r.cert, nil
}

// Err returns the error of the last reload attempt, nil if it succeeded.
func (r *Reloader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

// Config returns a server tls.Config using r, limited to HTTP/1.1 (the
// WebSocket upgrade needs it) and TLS 1.2+.
func (r *Reloader) Config() *tls.Config {
	return &tls.Config{
		GetCertificate: r.GetCertificate,
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1"},
	}
}
