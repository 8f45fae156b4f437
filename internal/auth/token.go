package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// tokenBytes is the entropy of a session token: 256 bits.
const tokenBytes = 32

var tokenLen = base64.RawURLEncoding.EncodedLen(tokenBytes)

// newToken returns a fresh bearer token and the hash under which it is stored.
func newToken() (token string, hash []byte) {
	b := make([]byte, tokenBytes)
	rand.Read(b)
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, hashToken(token)
}

func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// wellFormed reports whether token could be one of ours, so that junk never reaches the
// database. The decoded length is checked too: the decoder skips CR and LF, so 43
// characters with a line break in them decode, to fewer bytes.
func wellFormed(token string) bool {
	if len(token) != tokenLen {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil && len(b) == tokenBytes
}
