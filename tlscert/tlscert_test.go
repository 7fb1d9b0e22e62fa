package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writePair writes a self-signed certificate for 127.0.0.1 with the given
// common name.
func writePair(t *testing.T, dir, cn string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

func commonName(t *testing.T, c *tls.Certificate) string {
	t.Helper()
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x.Subject.CommonName
}

func TestReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := writePair(t, dir, "first")
	r, err := New(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r.now = func() time.Time { return now }
	c, _ := r.GetCertificate(nil)
	if commonName(t, c) != "first" {
		t.Fatal("first certificate not served")
	}
	writePair(t, dir, "second")
	// Force a different stamp even on coarse file-time filesystems.
	later := time.Now().Add(2 * time.Second)
	_ = os.Chtimes(certPath, later, later)
	c, _ = r.GetCertificate(nil)
	if commonName(t, c) != "first" {
		t.Fatal("reloaded before the check interval")
	}
	now = now.Add(2 * time.Second)
	c, _ = r.GetCertificate(nil)
	if commonName(t, c) != "second" || r.Err() != nil {
		t.Fatalf("not reloaded: %s, err %v", commonName(t, c), r.Err())
	}

	// A broken key keeps the previous certificate in service.
	if err := os.WriteFile(keyPath, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second)
	c, _ = r.GetCertificate(nil)
	if commonName(t, c) != "second" || r.Err() == nil {
		t.Fatal("a broken pair replaced the certificate or went unreported")
	}
}

func TestNewFailsOnMissingFiles(t *testing.T) {
	if _, err := New(filepath.Join(t.TempDir(), "nope.pem"), "nope.key"); err == nil {
		t.Fatal("want an error")
	}
}
