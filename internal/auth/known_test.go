package auth

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/internal/testdb"
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

// Questions about identities asked together get one answer each, across apps, whether
// sent as one batch or by logins asking at once.
func TestExistenceAsksTogether(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		db := b.Open(t)
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		exists := map[identityKey]bool{}
		var asked []identityKey
		for i := range 12 {
			k := identityKey{fmt.Sprintf("wxapp%d", i%2), fmt.Sprintf("openid-%02d", i)}
			asked = append(asked, k)
			if i%3 == 0 {
				continue // never logged in
			}
			u := db.User.Create().SetID(uuid.Must(uuid.NewV7())).SetCreatedAt(now).SetLastLoginAt(now).SaveX(ctx)
			db.Identity.Create().SetID(uuid.Must(uuid.NewV7())).SetAppid(k.appid).SetOpenid(k.openid).
				SetSessionKey([]byte("sealed")).SetUserID(u.ID).SetCreatedAt(now).SetUpdatedAt(now).SaveX(ctx)
			exists[k] = true
		}
		// The same openid in the other app is another identity.
		asked = append(asked, identityKey{"wxapp0", "openid-01"})

		e := newExistence(db)
		var batch []*call[identityKey, bool]
		for _, k := range asked {
			batch = append(batch, &call[identityKey, bool]{q: k, done: make(chan struct{})})
		}
		e.sendBatch(batch)
		for _, c := range batch {
			if c.err != nil || c.a != exists[c.q] {
				t.Errorf("%v in one batch: %v, %v; want %v", c.q, c.a, c.err, exists[c.q])
			}
		}

		var wg sync.WaitGroup
		for _, k := range asked {
			wg.Go(func() {
				got, err := e.do(ctx, k)
				if err != nil || got != exists[k] {
					t.Errorf("%v asked at once with the rest: %v, %v; want %v", k, got, err, exists[k])
				}
			})
		}
		wg.Wait()
	})
}
