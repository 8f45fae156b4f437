// Micro-benchmarks of sealing and opening the secrets wxlogin keeps: a WeChat
// session_key (sealed at every login) and an 11-digit phone number, each with additional
// data of the shape its caller binds it to.
//
// Run them with:
//
//	go test -run '^$' -bench . ./internal/seal
package seal_test

import (
	"bytes"
	"testing"

	"github.com/wxlogin/wxlogin/internal/seal"
)

// benchSecrets are the values sealed in production, with their additional data.
var benchSecrets = []struct {
	name               string
	plaintext, binding []byte
}{
	// A session_key as WeChat sends it (base64 of 16 bytes, 24 bytes), bound like
	// auth.IdentityBinding: appid NUL openid.
	{"session_key", []byte("tiihtNczf5v6AKRyjwEUhQ=="), []byte("wxbenchapp000001\x00oBench-0123456789abcdefghijkl")},
	// A mainland phone number, bound like phone.Binding: "phone" NUL user id.
	{"phone", []byte("13800138000"), []byte("phone\x00" + "0b6c1f5e-3d2a-4c8e-9f10-7a5b4c3d2e1f")},
}

func benchRing(b *testing.B) *seal.Keyring {
	b.Helper()
	ring, err := seal.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		b.Fatal(err)
	}
	return ring
}

func BenchmarkSeal(b *testing.B) {
	ring := benchRing(b)
	for _, s := range benchSecrets {
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ring.Seal(s.plaintext, s.binding)
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	ring := benchRing(b)
	for _, s := range benchSecrets {
		sealed := ring.Seal(s.plaintext, s.binding)
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ring.Open(sealed, s.binding); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
