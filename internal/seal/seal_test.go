package seal_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/wxlogin/wxlogin/internal/seal"
)

func newKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

func TestSealOpenRoundTripAndBinding(t *testing.T) {
	ring, err := seal.NewKeyring(newKey())
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("tiihtNczf5v6AKRyjwEUhQ==")
	ad := []byte("wxappid\x00openid-1")
	sealed := ring.Seal(secret, ad)
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed value contains the plaintext")
	}
	if again := ring.Seal(secret, ad); bytes.Equal(again, sealed) {
		t.Fatal("two seals of the same value are identical: nonce reused")
	}
	got, err := ring.Open(sealed, ad)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v; want the plaintext", got, err)
	}

	cases := map[string]func() ([]byte, []byte){
		"other identity": func() ([]byte, []byte) { return sealed, []byte("wxappid\x00openid-2") },
		"flipped byte": func() ([]byte, []byte) {
			s := bytes.Clone(sealed)
			s[len(s)-1] ^= 1
			return s, ad
		},
		"truncated": func() ([]byte, []byte) { return sealed[:10], ad },
		"empty":     func() ([]byte, []byte) { return nil, ad },
	}
	for name, c := range cases {
		s, a := c()
		if _, err := ring.Open(s, a); !errors.Is(err, seal.ErrOpen) {
			t.Errorf("%s: Open error = %v, want ErrOpen", name, err)
		}
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKeyBytes := newKey(), newKey()
	oldRing, _ := seal.NewKeyring(oldKey)
	sealedOld := oldRing.Seal([]byte("secret"), nil)

	rotated, err := seal.NewKeyring(newKeyBytes, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open(sealedOld, nil); err != nil || string(got) != "secret" {
		t.Fatalf("rotated ring cannot open old value: %q, %v", got, err)
	}
	if !rotated.NeedsRotation(sealedOld) {
		t.Error("a value sealed by the old key should need rotation")
	}
	if rotated.NeedsRotation(rotated.Seal([]byte("x"), nil)) {
		t.Error("a value sealed by the current key should not need rotation")
	}

	newOnly, _ := seal.NewKeyring(newKeyBytes)
	if _, err := newOnly.Open(sealedOld, nil); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("a ring without the old key opened its value: %v", err)
	}
	if _, err := seal.NewKeyring(make([]byte, 16)); err == nil {
		t.Error("a 16-byte key was accepted")
	}
}
