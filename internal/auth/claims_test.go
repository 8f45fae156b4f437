package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/ent/logincode"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/testdb"
)

func codeHashFor(i int) []byte {
	sum := sha256.Sum256(fmt.Appendf(nil, "claims test %d", i))
	return sum[:]
}

// recordIDs reads every login code's record: its id by code hash, and its state.
func recordIDs(t *testing.T, db *database.DB) map[string]int {
	t.Helper()
	recs, err := db.LoginCode.Query().All(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, r := range recs {
		if r.State != logincode.StatePending {
			t.Errorf("record %d is %s, want pending", r.ID, r.State)
		}
		ids[string(r.CodeHash)] = r.ID
	}
	return ids
}

// Claims sent together are made by one insert, each login getting its own record's
// id; when one code of them is held already, each is claimed alone and only that one
// loses.
func TestClaimsTogether(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		db := b.Open(t)
		c := newClaims(db, DefaultCodeWindow)
		now := time.Now().UTC().Truncate(time.Microsecond)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		batch := func(from, to int) []*call[claimRequest, int] {
			var ps []*call[claimRequest, int]
			for i := from; i < to; i++ {
				ps = append(ps, &call[claimRequest, int]{q: claimRequest{codeHashFor(i), now}, deadline: time.Now().Add(10 * time.Second), done: make(chan struct{})})
			}
			return ps
		}

		first := batch(0, 10)
		c.sendBatch(first)
		// Code 10 is held before the second batch, which includes it.
		held, err := c.claim(ctx, codeHashFor(10), now)
		if err != nil || held == 0 {
			t.Fatalf("claiming code 10 alone = %d, %v", held, err)
		}
		second := batch(10, 20)
		c.sendBatch(second)

		ids := recordIDs(t, db)
		if len(ids) != 20 {
			t.Errorf("%d records, want 20", len(ids))
		}
		for i, p := range append(first, second...) {
			<-p.done
			want := ids[string(p.q.hash)]
			if string(p.q.hash) == string(codeHashFor(10)) {
				want = 0 // held by the claim before
			}
			if p.err != nil || p.a != want {
				t.Errorf("claim %d = %d, %v; want %d (the record's id), no error", i, p.a, p.err, want)
			}
		}
		if ids[string(codeHashFor(10))] != held {
			t.Errorf("code 10's record is %d, want the first claim's %d", ids[string(codeHashFor(10))], held)
		}
	})
}

// Many logins claiming at once, two of them for each code: one claim per code wins,
// whatever batches they went in, and its id is the record's.
func TestConcurrentClaims(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		db := b.Open(t)
		c := newClaims(db, DefaultCodeWindow)
		const codes = 100
		got := make([][2]int, codes)
		var wg sync.WaitGroup
		for i := range codes {
			for j := range 2 {
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					id, err := c.claim(ctx, codeHashFor(i), time.Now().UTC().Truncate(time.Microsecond))
					if err != nil {
						t.Errorf("code %d, claim %d: %v", i, j, err)
					}
					got[i][j] = id
				})
			}
		}
		wg.Wait()
		ids := recordIDs(t, db)
		for i, pair := range got {
			winner := pair[0] + pair[1]
			if (pair[0] == 0) == (pair[1] == 0) || winner != ids[string(codeHashFor(i))] {
				t.Errorf("code %d: claims got %v, want one to be the record's id %d and the other 0", i, pair, ids[string(codeHashFor(i))])
			}
		}
	})
}
