package auth

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"

	entsql "entgo.io/ent/dialect/sql"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/logincode"
	"github.com/wxlogin/wxlogin/internal/database"
)

// maxClaimBatch bounds the claims one statement makes.
const maxClaimBatch = 64

// claims makes the claims on login codes, grouping those of logins that arrive
// together into one insert. A claim commits on its own, before WeChat is asked, so that
// every instance sees it; at a peak that is a commit per login, and a commit of several
// claims costs the database about what one did (docs/benchmarks.md, the contract's
// floor). Nothing waits for company: a claim goes at once when none is in flight, and
// otherwise with the claims that came while one was.
type claims struct {
	db     *database.DB
	window time.Duration // how long a code's record lives

	mu     sync.Mutex
	queue  []*pendingClaim
	flying bool // a batch is on its way: claims that come now queue for the next
}

// pendingClaim is one login's claim, and then its answer: the record's id, or 0 when
// another request holds the code.
type pendingClaim struct {
	hash     []byte
	now      time.Time
	deadline time.Time
	id       int
	err      error
	done     chan struct{}
}

// claim inserts a pending record for the code and returns its id; 0 means another
// request holds it.
func (c *claims) claim(ctx context.Context, hash []byte, now time.Time) (int, error) {
	p := &pendingClaim{hash: hash, now: now, done: make(chan struct{})}
	p.deadline, _ = ctx.Deadline()
	c.mu.Lock()
	c.queue = append(c.queue, p)
	lead := !c.flying
	c.flying = true
	c.mu.Unlock()
	if lead {
		c.fly()
	}
	select {
	case <-p.done:
		return p.id, p.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// fly sends the claims queued, up to maxClaimBatch, and leaves those that queue
// meanwhile to a goroutine of their own, so that no login's claim waits on others'.
func (c *claims) fly() {
	c.mu.Lock()
	n := min(len(c.queue), maxClaimBatch)
	batch := c.queue[:n:n]
	c.queue = append([]*pendingClaim(nil), c.queue[n:]...)
	c.mu.Unlock()

	c.send(batch)

	c.mu.Lock()
	if len(c.queue) > 0 {
		go c.fly()
	} else {
		c.flying = false
	}
	c.mu.Unlock()
}

// send makes a batch's claims and answers each. The batch has until the latest of its
// logins' deadlines: a login that runs out of time stops waiting, and its claim, if
// made, runs out with its lease as a dead holder's does.
func (c *claims) send(batch []*pendingClaim) {
	var deadline time.Time
	for _, p := range batch {
		if p.deadline.After(deadline) {
			deadline = p.deadline
		}
	}
	if deadline.IsZero() {
		deadline = time.Now().Add(claimLease)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	defer func() {
		for _, p := range batch {
			close(p.done)
		}
	}()
	if len(batch) > 1 {
		ids, err := c.many(ctx, batch)
		if !database.IsUniqueViolation(err) {
			for _, p := range batch {
				p.id, p.err = ids[string(p.hash)], err
				if err == nil && p.id == 0 {
					p.err = errors.New("auth: a claim made with others was not read back")
				}
			}
			return
		}
		// A code of the batch is claimed already (by another instance, or by a login
		// whose record is still there), and the insert made none: each alone.
	}
	for _, p := range batch {
		p.id, p.err = c.one(ctx, p)
	}
}

// one makes a single claim.
func (c *claims) one(ctx context.Context, p *pendingClaim) (int, error) {
	var rec *ent.LoginCode
	err := database.Retry(ctx, func() (err error) {
		rec, err = c.db.LoginCode.Create().
			SetCodeHash(p.hash).
			SetState(logincode.StatePending).
			SetLeaseUntil(p.now.Add(claimLease)).
			SetExpiresAt(p.now.Add(c.window)).
			SetCreatedAt(p.now).
			Save(ctx)
		return err
	})
	switch {
	case database.IsUniqueViolation(err):
		return 0, nil
	case err != nil:
		return 0, err
	}
	return rec.ID, nil
}

// many makes every claim of batch with one insert, and reads their ids back by code
// (in the same round trip on MySQL). The insert makes all of them or none.
func (c *claims) many(ctx context.Context, batch []*pendingClaim) (map[string]int, error) {
	d := entsql.Dialect(c.db.Dialect)
	ins := d.Insert(logincode.Table).Columns(logincode.FieldCodeHash, logincode.FieldState,
		logincode.FieldLeaseUntil, logincode.FieldExpiresAt, logincode.FieldCreatedAt)
	hashes := make([]any, len(batch))
	for i, p := range batch {
		ins.Values(p.hash, string(logincode.StatePending), p.now.Add(claimLease), p.now.Add(c.window), p.now)
		hashes[i] = p.hash
	}
	iq, iargs := ins.Query()
	sq, sargs := d.Select(logincode.FieldID, logincode.FieldCodeHash).
		From(entsql.Table(logincode.Table)).
		Where(entsql.In(logincode.FieldCodeHash, hashes...)).
		Query()
	ids := make(map[string]int, len(batch))
	err := database.Retry(ctx, func() error {
		rows, err := c.db.QueryAfter(ctx, c.db.SQL, database.Statement{Query: sq, Args: sargs}, database.Statement{Query: iq, Args: iargs})
		if err != nil {
			return err
		}
		return readIDs(rows, ids)
	})
	return ids, err
}

// readIDs reads rows of id and code hash into ids, and closes them.
func readIDs(rows *sql.Rows, ids map[string]int) error {
	defer rows.Close()
	for {
		for rows.Next() {
			var id int
			var hash []byte
			if err := rows.Scan(&id, &hash); err != nil {
				return err
			}
			ids[string(hash)] = id
		}
		if !rows.NextResultSet() {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close()
}
