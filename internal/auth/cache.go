package auth

import (
	"sync"
	"time"

	"github.com/google/uuid"
)

// DefaultSessionCacheTTL is how long an instance answers for a session it has looked up
// without asking the database again. The contract lets a logout on one instance reach
// the others within 5 s; a cached session is at most this old.
const DefaultSessionCacheTTL = 3 * time.Second

// MaxSessionCacheTTL keeps the cache inside that promise with room for the lookup itself.
const MaxSessionCacheTTL = 4 * time.Second

const (
	// sessionCacheSize bounds the cache: at a few seconds each, it holds the sessions
	// of this many clients active at once; past it, a lookup is simply not kept.
	sessionCacheSize = 20_000
	// sweepEvery is how many stores pass between sweeps of what has expired.
	sweepEvery = 1024
	// forgetMemory is how long a forget is remembered: longer than any lookup can take
	// (the request deadline), so that a lookup begun before it never stores what it read.
	forgetMemory = 20 * time.Second
)

// sessionCache remembers the sessions this instance authenticated recently, by token
// hash, for a few seconds: a busy client's reads then cost no query. Whatever this
// instance changes about a user or a session (a logout, a revocation, a profile edit, a
// merge) drops the entries concerned at once; what other instances change is seen when
// an entry expires. Times are the service's clock, with its monotonic reading, so that
// a wall-clock step cannot stretch an entry's life.
type sessionCache struct {
	ttl time.Duration

	mu        sync.Mutex
	byToken   map[[32]byte]cachedSession
	byUser    map[uuid.UUID]map[[32]byte]struct{}
	bySession map[uuid.UUID][32]byte
	// forgotUser and forgotSession are when each was last forgotten: a lookup that
	// began before that does not store what it read, which may be what the forget
	// meant to drop.
	forgotUser    map[uuid.UUID]time.Time
	forgotSession map[uuid.UUID]time.Time
	ops           int // stores and forgets, counted for sweeps
}

type cachedSession struct {
	cur   *Current // shared by the requests that read it: never modified
	until time.Time
}

func newSessionCache(ttl time.Duration) *sessionCache {
	if ttl <= 0 {
		return nil
	}
	return &sessionCache{
		ttl:           min(ttl, MaxSessionCacheTTL),
		byToken:       make(map[[32]byte]cachedSession),
		byUser:        make(map[uuid.UUID]map[[32]byte]struct{}),
		bySession:     make(map[uuid.UUID][32]byte),
		forgotUser:    make(map[uuid.UUID]time.Time),
		forgotSession: make(map[uuid.UUID]time.Time),
	}
}

// get returns the cached session for the token hash, if it is there and fresh.
func (c *sessionCache) get(key [32]byte, now time.Time) *Current {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byToken[key]
	if !ok || !now.Before(e.until) {
		return nil
	}
	return e.cur
}

// put remembers cur, read by a lookup that began at started, unless its user or its
// session was forgotten since.
func (c *sessionCache) put(key [32]byte, cur *Current, started, now time.Time) {
	if c == nil {
		return
	}
	userID, sessionID := cur.Account.User.ID, cur.Session.ID
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.forgotUser[userID]; ok && !t.Before(started) {
		return
	}
	if t, ok := c.forgotSession[sessionID]; ok && !t.Before(started) {
		return
	}
	c.countLocked(now)
	if old, ok := c.byToken[key]; ok {
		c.dropLocked(key, old) // filed under the user it had then
	} else if len(c.byToken) >= sessionCacheSize {
		return
	}
	c.byToken[key] = cachedSession{cur: cur, until: now.Add(c.ttl)}
	if c.byUser[userID] == nil {
		c.byUser[userID] = make(map[[32]byte]struct{})
	}
	c.byUser[userID][key] = struct{}{}
	c.bySession[sessionID] = key
}

// forget drops every entry of the users and of the sessions, and keeps lookups under
// way from storing them again.
func (c *sessionCache) forget(now time.Time, users []uuid.UUID, sessions []uuid.UUID) {
	if c == nil || len(users)+len(sessions) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.countLocked(now)
	for _, u := range users {
		c.forgotUser[u] = now
		for key := range c.byUser[u] {
			c.dropLocked(key, c.byToken[key])
		}
	}
	for _, s := range sessions {
		c.forgotSession[s] = now
		if key, ok := c.bySession[s]; ok {
			c.dropLocked(key, c.byToken[key])
		}
	}
}

// drop removes one entry: it is out of date, and the next lookup reads it again.
func (c *sessionCache) drop(key [32]byte) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byToken[key]; ok {
		c.dropLocked(key, e)
	}
}

func (c *sessionCache) dropLocked(key [32]byte, e cachedSession) {
	delete(c.byToken, key)
	if e.cur == nil {
		return
	}
	userID, sessionID := e.cur.Account.User.ID, e.cur.Session.ID
	if keys := c.byUser[userID]; keys != nil {
		delete(keys, key)
		if len(keys) == 0 {
			delete(c.byUser, userID)
		}
	}
	if c.bySession[sessionID] == key {
		delete(c.bySession, sessionID)
	}
}

func (c *sessionCache) countLocked(now time.Time) {
	if c.ops++; c.ops%sweepEvery == 0 {
		c.sweepLocked(now)
	}
}

// sweepLocked removes expired entries and forgets older than any lookup.
func (c *sessionCache) sweepLocked(now time.Time) {
	for key, e := range c.byToken {
		if !now.Before(e.until) {
			c.dropLocked(key, e)
		}
	}
	for id, t := range c.forgotUser {
		if now.Sub(t) > forgetMemory {
			delete(c.forgotUser, id)
		}
	}
	for id, t := range c.forgotSession {
		if now.Sub(t) > forgetMemory {
			delete(c.forgotSession, id)
		}
	}
}

// size is how many sessions are cached (for tests).
func (c *sessionCache) size() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byToken)
}
