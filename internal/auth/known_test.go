package auth

import (
	"fmt"
	"testing"
)

// TestKnownIdentities: an identity is known in its own mini-program only, and the set
// never holds more than its bound.
func TestKnownIdentities(t *testing.T) {
	k := newKnownIdentities()
	k.add("wx1", "o1")
	if !k.has("wx1", "o1") || k.has("wx2", "o1") || k.has("wx1", "o2") {
		t.Errorf("after adding wx1/o1: has(wx1,o1) %v, has(wx2,o1) %v, has(wx1,o2) %v; want only the first",
			k.has("wx1", "o1"), k.has("wx2", "o1"), k.has("wx1", "o2"))
	}
	for i := range maxKnownIdentities + 10 {
		k.add("wx1", fmt.Sprint("openid-", i))
	}
	if n := len(k.set); n > maxKnownIdentities {
		t.Errorf("%d identities held, want at most %d", n, maxKnownIdentities)
	}
	if last := fmt.Sprint("openid-", maxKnownIdentities+9); !k.has("wx1", last) {
		t.Errorf("the identity added last is not known")
	}
}
