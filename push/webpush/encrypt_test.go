package webpush

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// RFC 8291 Appendix A.
const (
	rfcPlaintext = "When I grow up, I want to be a watermelon"
	rfcASPrivate = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
	rfcASPublic  = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
	rfcUAPrivate = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
	rfcUAPublic  = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
	rfcAuth      = "BTBZMqHH6r4Tts7J_aSIgg"
	rfcSalt      = "DGv6ra1nlYgDCS1FRnbzlw"
	rfcBody      = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml" +
		"mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT" +
		"pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEncryptRFC8291Vector(t *testing.T) {
	as, err := ecdh.P256().NewPrivateKey(mustB64(t, rfcASPrivate))
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.RawURLEncoding.EncodeToString(as.PublicKey().Bytes()); got != rfcASPublic {
		t.Fatalf("as_public %s", got)
	}
	sub, err := ParseSubscription("https://push.example.net/push/JzLQ3raZJfFBR0aqvOMsLrt54w4rJUsV", rfcUAPublic, rfcAuth)
	if err != nil {
		t.Fatal(err)
	}
	ua, err := sub.uaPublic()
	if err != nil {
		t.Fatal(err)
	}
	body, err := encryptWith(as, mustB64(t, rfcSalt), ua, sub.Auth, []byte(rfcPlaintext), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.RawURLEncoding.EncodeToString(body); got != rfcBody {
		t.Fatalf("body\n got %s\nwant %s", got, rfcBody)
	}
	// The test receiver decrypts the RFC's body with the RFC's UA key.
	uaPriv, err := ecdh.P256().NewPrivateKey(mustB64(t, rfcUAPrivate))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := decryptBody(uaPriv, sub.Auth, mustB64(t, rfcBody))
	if err != nil || string(pt) != rfcPlaintext {
		t.Fatalf("decrypt: %q, %v", pt, err)
	}
}

// decryptBody is the user agent's side of RFC 8291, written independently
// of encryptWith: the test receiver uses it.
func decryptBody(ua *ecdh.PrivateKey, auth, body []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("short body")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if rs < 18 || idlen != 65 || len(body) < 21+idlen {
		return nil, fmt.Errorf("header rs=%d idlen=%d", rs, idlen)
	}
	asPub, err := ecdh.P256().NewPublicKey(body[21 : 21+idlen])
	if err != nil {
		return nil, err
	}
	record := body[21+idlen:]
	if len(record) > int(rs) || len(record) < 17 {
		return nil, fmt.Errorf("record of %d bytes, rs %d", len(record), rs)
	}
	secret, err := ua.ECDH(asPub)
	if err != nil {
		return nil, err
	}
	info := append(append([]byte("WebPush: info\x00"), ua.PublicKey().Bytes()...), asPub.Bytes()...)
	ikm, err := hkdf.Key(sha256.New, secret, auth, string(info), 32)
	if err != nil {
		return nil, err
	}
	cek, _ := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	nonce, _ := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	block, _ := aes.NewCipher(cek)
	gcm, _ := cipher.NewGCM(block)
	pt, err := gcm.Open(nil, nonce, record, nil)
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexFunc(pt, func(r rune) bool { return r != 0 })
	if i < 0 || pt[i] != 0x02 {
		return nil, errors.New("no last-record delimiter")
	}
	return pt[:i], nil
}

func newUA(t testing.TB) (*ecdh.PrivateKey, []byte) {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k, bytes.Repeat([]byte{7}, AuthSize)
}

func TestEncryptRoundTripAndPadding(t *testing.T) {
	ua, auth := newUA(t)
	tcs := []struct {
		name      string
		plaintext int
		padTo     int
		bodyLen   int
	}{
		{"empty", 0, 0, Overhead},
		{"no padding", 100, 0, Overhead + 100},
		{"padded", 100, 512, Overhead + 512},
		{"padding never shortens", 600, 512, Overhead + 600},
		{"one full record", MaxRecordPlaintext, 0, RecordSize},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			pt := bytes.Repeat([]byte{'x'}, tc.plaintext)
			body, err := encrypt(ua.PublicKey(), auth, pt, tc.padTo)
			if err != nil {
				t.Fatal(err)
			}
			if len(body) != tc.bodyLen {
				t.Fatalf("body of %d bytes, want %d", len(body), tc.bodyLen)
			}
			got, err := decryptBody(ua, auth, body)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("decrypt: %d bytes, %v", len(got), err)
			}
		})
	}
	if _, err := encrypt(ua.PublicKey(), auth, make([]byte, MaxRecordPlaintext+1), 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over one record: %v", err)
	}
	if _, err := encrypt(ua.PublicKey(), auth, nil, MaxRecordPlaintext+1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("padding over one record: %v", err)
	}
}

// Every message gets a fresh salt and ephemeral key (RFC 8291 §3.4).
func TestEncryptFreshKeyAndSalt(t *testing.T) {
	ua, auth := newUA(t)
	a, _ := encrypt(ua.PublicKey(), auth, []byte("same"), 0)
	b, _ := encrypt(ua.PublicKey(), auth, []byte("same"), 0)
	if bytes.Equal(a[:16], b[:16]) || bytes.Equal(a[21:headerSize], b[21:headerSize]) {
		t.Fatal("salt or ephemeral key reused")
	}
}

// One payload fanned out concurrently is only read: with spare capacity
// an append of the delimiter would write into it (webpush-go v1.4.0).
func TestEncryptSharedPayloadConcurrently(t *testing.T) {
	ua, auth := newUA(t)
	backing := bytes.Repeat([]byte{0xAA}, 300)
	payload := backing[:200] // 100 bytes of spare capacity
	want := bytes.Clone(backing)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			body, err := encrypt(ua.PublicKey(), auth, payload, i*50)
			if err == nil {
				var got []byte
				got, err = decryptBody(ua, auth, body)
				if err == nil && !bytes.Equal(got, payload) {
					err = errors.New("round trip changed the payload")
				}
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(backing, want) {
		t.Fatal("the caller's payload (or its spare capacity) was written to")
	}
}

func TestPaddedSize(t *testing.T) {
	tcs := []struct{ n, bucket, limit, want int }{
		{10, 0, 3000, 10},
		{10, 256, 3000, 256},
		{256, 256, 3000, 256},
		{257, 256, 3000, 512},
		{2900, 1024, 2967, 2967},
		{2967, 1024, 2967, 2967},
		{0, 256, 3000, 0},
	}
	for _, tc := range tcs {
		if got := paddedSize(tc.n, tc.bucket, tc.limit); got != tc.want {
			t.Errorf("paddedSize(%d, %d, %d) = %d, want %d", tc.n, tc.bucket, tc.limit, got, tc.want)
		}
	}
}
