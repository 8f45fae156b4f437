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
// holds at most its bound, forgetting the least recently seen.
func TestKnownIdentities(t *testing.T) {
	k := newKnownIdentities()
	k.Add(identityKey{"wx1", "o1"}, struct{}{})
	if !k.Contains(identityKey{"wx1", "o1"}) || k.Contains(identityKey{"wx2", "o1"}) || k.Contains(identityKey{"wx1", "o2"}) {
		t.Error("after adding wx1/o1, want it known and neither wx2/o1 nor wx1/o2")
	}
	for i := range maxKnownIdentities + 10 {
		k.Add(identityKey{"wx1", fmt.Sprint("openid-", i)}, struct{}{})
	}
	if n := k.Len(); n != maxKnownIdentities {
		t.Errorf("%d identities held, want %d", n, maxKnownIdentities)
	}
	if k.Contains(identityKey{"wx1", "o1"}) || k.Contains(identityKey{"wx1", "openid-0"}) || !k.Contains(identityKey{"wx1", fmt.Sprint("openid-", maxKnownIdentities+9)}) {
		t.Error("the set forgot another than the least recently seen")
	}
}

// Questions about identities asked at once (they go to the database together) get one
// answer each, across apps.
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
