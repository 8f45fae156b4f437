// Package seal encrypts small secrets at rest (WeChat session keys, later phone numbers)
// with AES-256-GCM. Every sealed value names the key that sealed it, so keys can rotate:
// the current key seals, the current and older keys open.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Sealed layout: version (1 byte) | key id (4 bytes) | nonce (12 bytes) | ciphertext+tag.
const (
	version    = 1
	keyIDLen   = 4
	headerLen  = 1 + keyIDLen
	minSealLen = headerLen + 12 + 16
)

// ErrOpen means a sealed value could not be opened: unknown key, tampering, or the
// wrong additional data.
var ErrOpen = errors.New("seal: cannot open sealed value")

// Keyring seals with its current key and opens with any of its keys.
type Keyring struct {
	current uint32
	aeads   map[uint32]cipher.AEAD
}

// NewKeyring builds a keyring from the current 32-byte key and any older ones.
func NewKeyring(current []byte, old ...[]byte) (*Keyring, error) {
	k := &Keyring{aeads: make(map[uint32]cipher.AEAD)}
	for i, key := range append([][]byte{current}, old...) {
		if len(key) != 32 {
			return nil, fmt.Errorf("seal: key %d is %d bytes, want 32", i, len(key))
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		id := KeyID(key)
		if i == 0 {
			k.current = id
		}
		k.aeads[id] = aead
	}
	return k, nil
}

// KeyID names a key without revealing it: the first four bytes of SHA-256 over a
// domain label and the key.
func KeyID(key []byte) uint32 {
	sum := sha256.Sum256(append([]byte("wxlogin seal key id\x00"), key...))
	return binary.BigEndian.Uint32(sum[:keyIDLen])
}

// Seal encrypts plaintext under the current key. additionalData (for example the
// identity a session key belongs to) must be given again to Open: a value copied to
// another row does not open there.
func (k *Keyring) Seal(plaintext, additionalData []byte) []byte {
	aead := k.aeads[k.current]
	out := make([]byte, headerLen, minSealLen+len(plaintext))
	out[0] = version
	binary.BigEndian.PutUint32(out[1:headerLen], k.current)
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plaintext, k.additional(out[:headerLen], additionalData))
}

// Open decrypts a value made by Seal with any key of the ring.
func (k *Keyring) Open(sealed, additionalData []byte) ([]byte, error) {
	if len(sealed) < minSealLen || sealed[0] != version {
		return nil, ErrOpen
	}
	aead, ok := k.aeads[binary.BigEndian.Uint32(sealed[1:headerLen])]
	if !ok {
		return nil, fmt.Errorf("%w: sealed with a key that is not configured", ErrOpen)
	}
	nonce := sealed[headerLen : headerLen+aead.NonceSize()]
	plaintext, err := aead.Open(nil, nonce, sealed[headerLen+aead.NonceSize():], k.additional(sealed[:headerLen], additionalData))
	if err != nil {
		return nil, ErrOpen
	}
	return plaintext, nil
}

// NeedsRotation reports whether a sealed value was made with an older key.
func (k *Keyring) NeedsRotation(sealed []byte) bool {
	return len(sealed) < headerLen || binary.BigEndian.Uint32(sealed[1:headerLen]) != k.current
}

// additional binds the header (version and key id) along with the caller's data.
func (k *Keyring) additional(header, data []byte) []byte {
	return append(append([]byte{}, header...), data...)
}
