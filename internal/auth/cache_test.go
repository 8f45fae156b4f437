package auth

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
)

func cachedFor(user, session uuid.UUID) *Current {
	return &Current{Session: &ent.Session{ID: session}, Account: Account{User: &ent.User{ID: user}}}
}

// TestSessionCacheForgets: a forget drops what is cached, and a lookup that began before
// it does not store what it read.
func TestSessionCacheForgets(t *testing.T) {
	c := newSessionCache(3 * time.Second)
	t0 := time.Now()
	alice, bob := uuid.New(), uuid.New()
	s1, s2 := uuid.New(), uuid.New()
	k1, k2 := [32]byte{1}, [32]byte{2}

	c.put(k1, cachedFor(alice, s1), t0, t0)
	if c.get(k1, t0.Add(time.Second)) == nil {
		t.Fatal("a session just stored is not there")
	}
	if c.get(k1, t0.Add(3*time.Second)) != nil {
		t.Error("a session is still there after its time to live")
	}

	c.forget(t0.Add(time.Second), []uuid.UUID{alice}, nil)
	if c.get(k1, t0.Add(time.Second)) != nil {
		t.Error("a forgotten user's session is still there")
	}
	c.put(k1, cachedFor(alice, s1), t0, t0.Add(2*time.Second)) // began before the forget
	if c.get(k1, t0.Add(2*time.Second)) != nil {
		t.Error("a lookup begun before the forget stored what it read")
	}
	c.put(k1, cachedFor(alice, s1), t0.Add(2*time.Second), t0.Add(2*time.Second))
	if c.get(k1, t0.Add(2*time.Second)) == nil {
		t.Error("a lookup begun after the forget was not stored")
	}

	// A session filed under its old user (before a merge) is dropped by its own id.
	c.put(k2, cachedFor(bob, s2), t0, t0)
	c.forget(t0.Add(time.Second), []uuid.UUID{alice}, []uuid.UUID{s2})
	if c.get(k2, t0.Add(time.Second)) != nil {
		t.Error("forgetting a session by id left it cached")
	}
	if c.get(k1, t0.Add(time.Second)) != nil {
		t.Error("forgetting alice left her session cached")
	}
}

// TestSessionCacheIsBounded: past its size, the cache stores no more; a sweep makes room
// as entries expire.
func TestSessionCacheIsBounded(t *testing.T) {
	c := newSessionCache(time.Second)
	t0 := time.Now()
	for i := range sessionCacheSize + 500 {
		var k [32]byte
		k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
		c.put(k, cachedFor(uuid.New(), uuid.New()), t0, t0)
	}
	if n := c.size(); n != sessionCacheSize {
		t.Errorf("%d sessions cached, want at most %d", n, sessionCacheSize)
	}
	later := t0.Add(2 * time.Second)
	for i := range sweepEvery {
		var k [32]byte
		k[0], k[1], k[3] = byte(i), byte(i>>8), 1
		c.put(k, cachedFor(uuid.New(), uuid.New()), later, later)
	}
	if n := c.size(); n > sweepEvery {
		t.Errorf("%d sessions cached after the earlier ones expired and a sweep ran", n)
	}
}
