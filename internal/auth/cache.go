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

// sessionCacheSize bounds the cache; past it, expired entries go first, then any.
const sessionCacheSize = 100_000

// sessionCache remembers the sessions this instance authenticated recently, by token
// hash, for a few seconds: a busy client's requests then cost no query. Whatever this
// instance changes about a user (a logout, a revocation, a profile edit) drops that
// user's entries at once; what other instances change is seen when an entry expires.
type sessionCache struct {
	ttl time.Duration

	mu      sync.RWMutex
	byToken map[[32]byte]cachedSession
	byUser  map[uuid.UUID]map[[32]byte]struct{}
	// gen counts the forgets: a lookup that began before one does not store what it read,
	// which may be what the forget meant to drop.
	gen uint64
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
		ttl:     min(ttl, MaxSessionCacheTTL),
		byToken: make(map[[32]byte]cachedSession),
		byUser:  make(map[uuid.UUID]map[[32]byte]struct{}),
	}
}

// get returns the cached session for the token hash, if it is there and fresh, and the
// generation to pass to put after a lookup.
func (c *sessionCache) get(key [32]byte, now time.Time) (*Current, uint64) {
	if c == nil {
		return nil, 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.byToken[key]
	if !ok || !now.Before(e.until) {
		return nil, c.gen
	}
	return e.cur, c.gen
}

// put remembers cur, unless a forget happened since gen was read.
func (c *sessionCache) put(key [32]byte, cur *Current, gen uint64, now time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.byToken) >= sessionCacheSize {
		c.shrinkLocked(now)
	}
	userID := cur.Account.User.ID
	c.byToken[key] = cachedSession{cur: cur, until: now.Add(c.ttl)}
	if c.byUser[userID] == nil {
		c.byUser[userID] = make(map[[32]byte]struct{})
	}
	c.byUser[userID][key] = struct{}{}
}

// forget drops every entry of the users.
func (c *sessionCache) forget(users ...uuid.UUID) {
	if c == nil || len(users) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, u := range users {
		for key := range c.byUser[u] {
			delete(c.byToken, key)
		}
		delete(c.byUser, u)
	}
}

// forgetToken drops one entry: its session changed.
func (c *sessionCache) forgetToken(key [32]byte) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if e, ok := c.byToken[key]; ok {
		c.dropLocked(key, e)
	}
}

// shrinkLocked makes room: expired entries first, then a tenth of the rest (map order
// is as good as random).
func (c *sessionCache) shrinkLocked(now time.Time) {
	for key, e := range c.byToken {
		if !now.Before(e.until) {
			c.dropLocked(key, e)
		}
	}
	excess := len(c.byToken) - sessionCacheSize*9/10
	for key, e := range c.byToken {
		if excess <= 0 {
			break
		}
		c.dropLocked(key, e)
		excess--
	}
}

func (c *sessionCache) dropLocked(key [32]byte, e cachedSession) {
	delete(c.byToken, key)
	userID := e.cur.Account.User.ID
	if keys := c.byUser[userID]; keys != nil {
		delete(keys, key)
		if len(keys) == 0 {
			delete(c.byUser, userID)
		}
	}
}
