package webpush

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Sizes of the aes128gcm encoding as Web Push uses it: one record of
// RecordSize bytes at most (RFC 8291 §4, RFC 8188 §2).
const (
	// RecordSize is the rs field: the largest record a push service must
	// accept (RFC 8291 §4 requires 4096 bytes of body).
	RecordSize = 4096
	// headerSize is salt(16) ‖ rs(4) ‖ idlen(1) ‖ keyid (the sender's
	// 65-byte public key).
	headerSize = 16 + 4 + 1 + P256dhSize
	// tagSize is the AES-GCM authentication tag.
	tagSize = 16
	// Overhead is what encryption adds to a plaintext without padding:
	// the header, the one-byte delimiter and the tag (103 bytes).
	Overhead = headerSize + 1 + tagSize
	// MaxRecordPlaintext is the largest plaintext one record can carry:
	// 4096 − 86 − 16 − 1 = 3993 bytes.
	MaxRecordPlaintext = RecordSize - headerSize - tagSize - 1
)

// lastRecord is the delimiter after the plaintext of the last (here, the
// only) record (RFC 8188 §2).
const lastRecord = 0x02

// ErrTooLarge is wrapped by encryption of a plaintext (with its padding)
// that does not fit one record.
var ErrTooLarge = errors.New("webpush: payload too large")

// encrypt encrypts plaintext for the subscription's user agent with a
// fresh ephemeral key and salt (RFC 8291 §3.4: never reuse them), padded
// with zeros to padTo bytes of plaintext when padTo > len(plaintext). It
// never writes to plaintext: one payload can be sent to many subscriptions
// at once.
func encrypt(uaPublic *ecdh.PublicKey, auth, plaintext []byte, padTo int) ([]byte, error) {
	as, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("webpush: ephemeral key: %w", err)
	}
	var salt [16]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return nil, fmt.Errorf("webpush: salt: %w", err)
	}
	return encryptWith(as, salt[:], uaPublic, auth, plaintext, padTo)
}

// encryptWith is encrypt with the ephemeral key as and the salt given, so
// that the RFC 8291 Appendix A vector can be reproduced.
func encryptWith(as *ecdh.PrivateKey, salt []byte, uaPublic *ecdh.PublicKey, auth, plaintext []byte, padTo int) ([]byte, error) {
	if len(salt) != 16 || len(auth) != AuthSize {
		return nil, errors.New("webpush: salt and auth must be 16 bytes")
	}
	content := max(len(plaintext), padTo) // plaintext ‖ zero padding
	if content > MaxRecordPlaintext {
		return nil, fmt.Errorf("%w: %d bytes, one record holds %d", ErrTooLarge, content, MaxRecordPlaintext)
	}
	secret, err := as.ECDH(uaPublic)
	if err != nil {
		return nil, fmt.Errorf("webpush: ecdh: %w", err)
	}
	asPublic := as.PublicKey().Bytes()
	uaBytes := uaPublic.Bytes()

	// RFC 8291 §3.3-3.4: the auth secret and both public keys go into IKM;
	// RFC 8188 §2.2-2.3: CEK and NONCE come from IKM and the salt.
	keyInfo := make([]byte, 0, 14+2*P256dhSize)
	keyInfo = append(keyInfo, "WebPush: info\x00"...)
	keyInfo = append(keyInfo, uaBytes...)
	keyInfo = append(keyInfo, asPublic...)
	ikm, err := hkdf.Key(sha256.New, secret, auth, string(keyInfo), 32)
	if err != nil {
		return nil, fmt.Errorf("webpush: hkdf: %w", err)
	}
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		return nil, fmt.Errorf("webpush: hkdf: %w", err)
	}
	cek, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, fmt.Errorf("webpush: hkdf: %w", err)
	}
	nonce, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, fmt.Errorf("webpush: hkdf: %w", err)
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, fmt.Errorf("webpush: aes: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("webpush: gcm: %w", err)
	}

	// One allocation for the whole body. The plaintext is copied in and
	// sealed in place; the caller's slice is only read (webpush-go appended
	// the delimiter to it, a race when one payload fans out).
	n := content + 1
	body := make([]byte, headerSize+n+tagSize)
	copy(body, salt)
	binary.BigEndian.PutUint32(body[16:20], RecordSize)
	body[20] = P256dhSize
	copy(body[21:headerSize], asPublic)
	rec := body[headerSize : headerSize+n]
	copy(rec, plaintext)
	rec[len(plaintext)] = lastRecord // the rest is already zero padding
	gcm.Seal(rec[:0], nonce, rec, nil)
	return body, nil
}

// paddedSize is the plaintext size a payload of n bytes is padded to with
// buckets of bucket bytes (0: no padding), never beyond limit.
func paddedSize(n, bucket, limit int) int {
	if bucket <= 0 {
		return n
	}
	return max(n, min((n+bucket-1)/bucket*bucket, limit))
}
