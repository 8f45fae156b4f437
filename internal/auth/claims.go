package auth

import (
	"context"
	"database/sql"
	"errors"
	"time"

	entsql "entgo.io/ent/dialect/sql"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/logincode"
	"github.com/wxlogin/wxlogin/internal/database"
)

// maxBatch bounds the requests one statement carries.
const maxBatch = 64

// claims makes the claims on login codes, those of logins that arrive together with
// one insert. A claim commits on its own, before WeChat is asked, so that every
// instance sees it: at a peak that is a commit per login, and a commit of several
// claims costs the database about what one did (docs/benchmarks.md, the contract's
// floor).
type claims struct {
	db     *database.DB
	window time.Duration // how long a code's record lives
	batcher[claimRequest, int]
}

type claimRequest struct {
	hash []byte
	now  time.Time
}

func newClaims(db *database.DB, window time.Duration) *claims {
	c := &claims{db: db, window: window}
	c.batcher = batcher[claimRequest, int]{max: maxBatch, send: c.send}
	return c
}

// claim inserts a pending record for the code and returns its id; 0 means another
// request holds it.
func (c *claims) claim(ctx context.Context, hash []byte, now time.Time) (int, error) {
	return c.do(ctx, claimRequest{hash, now})
}

// send makes a batch's claims: all with one insert, or, when a code of the batch is
// held already (by another instance, or by a login whose record is still there) and
// the insert made none, each alone.
func (c *claims) send(ctx context.Context, batch []*call[claimRequest, int]) {
	if len(batch) > 1 {
		ids, err := c.many(ctx, batch)
		if !database.IsUniqueViolation(err) {
			for _, p := range batch {
				p.a, p.err = ids[string(p.q.hash)], err
				if err == nil && p.a == 0 {
					p.err = errors.New("auth: a claim made with others was not read back")
				}
			}
			return
		}
	}
	for _, p := range batch {
		p.a, p.err = c.one(ctx, p.q)
	}
}

// one makes a single claim.
func (c *claims) one(ctx context.Context, q claimRequest) (int, error) {
	var rec *ent.LoginCode
	err := database.Retry(ctx, func() (err error) {
		rec, err = c.db.LoginCode.Create().
			SetCodeHash(q.hash).
			SetState(logincode.StatePending).
			SetLeaseUntil(q.now.Add(claimLease)).
			SetExpiresAt(q.now.Add(c.window)).
			SetCreatedAt(q.now).
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
func (c *claims) many(ctx context.Context, batch []*call[claimRequest, int]) (map[string]int, error) {
	d := entsql.Dialect(c.db.Dialect)
	ins := d.Insert(logincode.Table).Columns(logincode.FieldCodeHash, logincode.FieldState,
		logincode.FieldLeaseUntil, logincode.FieldExpiresAt, logincode.FieldCreatedAt)
	hashes := make([]any, len(batch))
	for i, p := range batch {
		ins.Values(p.q.hash, string(logincode.StatePending), p.q.now.Add(claimLease), p.q.now.Add(c.window), p.q.now)
		hashes[i] = p.q.hash
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
		return readRows(rows, func(rows *sql.Rows) error {
			var id int
			var hash []byte
			if err := rows.Scan(&id, &hash); err != nil {
				return err
			}
			ids[string(hash)] = id
			return nil
		})
	})
	return ids, err
}

// readRows calls row for each row of rows, past results without rows, and closes them.
func readRows(rows *sql.Rows, row func(*sql.Rows) error) error {
	defer rows.Close()
	for {
		for rows.Next() {
			if err := row(rows); err != nil {
				return err
			}
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
