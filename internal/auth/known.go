package auth

import "sync"

// maxKnownIdentities bounds knownIdentities: about 100 bytes each.
const maxKnownIdentities = 50_000

// knownIdentities remembers the identities this instance has seen in the database, so
// that a returning login need not ask whether its identity exists (identityKnown).
// Identities are never deleted, so what it holds stays true on every instance; what it
// lacks is asked. When full it starts afresh.
type knownIdentities struct {
	mu  sync.RWMutex
	set map[identityKey]struct{}
}

type identityKey struct{ appid, openid string }

func newKnownIdentities() *knownIdentities {
	return &knownIdentities{set: make(map[identityKey]struct{})}
}

func (k *knownIdentities) has(appid, openid string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	_, ok := k.set[identityKey{appid, openid}]
	return ok
}

func (k *knownIdentities) add(appid, openid string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.set) >= maxKnownIdentities {
		clear(k.set)
	}
	k.set[identityKey{appid, openid}] = struct{}{}
}
