package auth

import (
	"context"
	"database/sql"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/logincode"
	"github.com/wxlogin/wxlogin/internal/claim"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/ids"
)

// maxBatch bounds the requests one statement carries.
const maxBatch = 64

// loginCode is one wx.login code's claim (claim.Store): its row in login_codes, keyed
// by the code's hash. A done row says whom the code logged in (codeRecord).
type loginCode struct {
	s    *Service
	hash []byte
}

func (c loginCode) Insert(ctx context.Context, lease, expires time.Time) (uuid.UUID, error) {
	return c.s.claims.do(ctx, claimRequest{c.hash, lease, expires, c.s.clock()})
}

func (c loginCode) Find(ctx context.Context) (claim.Row[codeRecord], bool, error) {
	rec, err := c.s.db.LoginCode.Query().Where(logincode.CodeHash(c.hash)).Only(ctx)
	switch {
	case ent.IsNotFound(err):
		return claim.Row[codeRecord]{}, false, nil
	case err != nil:
		return claim.Row[codeRecord]{}, false, err
	}
	row := claim.Row[codeRecord]{ID: rec.ID, Failure: deref(rec.Failure), LeaseUntil: rec.LeaseUntil, ExpiresAt: rec.ExpiresAt}
	switch rec.State {
	case logincode.StateDone:
		row.State = claim.Done
		row.Data = codeRecord{id: rec.ID, userID: *rec.UserID, identityID: *rec.IdentityID, newUser: rec.NewUser}
	case logincode.StateFailed:
		row.State = claim.Failed
	}
	return row, true, nil
}

func (c loginCode) Delete(ctx context.Context, id uuid.UUID, state claim.State) error {
	_, err := c.s.db.LoginCode.Delete().Where(logincode.ID(id), logincode.StateEQ(loginCodeState(state))).Exec(ctx)
	return err
}

func (c loginCode) Fail(ctx context.Context, id uuid.UUID, failure string, expires time.Time) error {
	return c.s.db.LoginCode.Update().
		Where(logincode.ID(id), logincode.StateEQ(logincode.StatePending)).
		SetState(logincode.StateFailed).SetFailure(failure).SetExpiresAt(expires).
		Exec(ctx)
}

func loginCodeState(s claim.State) logincode.State {
	switch s {
	case claim.Done:
		return logincode.StateDone
	case claim.Failed:
		return logincode.StateFailed
	}
	return logincode.StatePending
}

// claims makes the claims on login codes, those of logins that arrive together with
// one insert. A claim commits on its own, before WeChat is asked, so that every
// instance sees it: at a peak that is a commit per login, and a commit of several
// claims costs the database about what one did (docs/benchmarks.md).
type claims struct {
	db *database.DB
	batcher[claimRequest, uuid.UUID]
}

type claimRequest struct {
	hash                []byte
	lease, expires, now time.Time
}

func newClaims(db *database.DB) *claims {
	c := &claims{db: db}
	c.batcher = batcher[claimRequest, uuid.UUID]{name: "login code claims", max: maxBatch, send: c.send}
	return c
}

// send makes a batch's claims, each a pending row, and answers each with its row's id,
// or uuid.Nil when its code is claimed already: all with one insert, or, when a code of
// the batch is held already (by another instance, or by a login whose record is still
// there) and the insert made none, each alone.
func (c *claims) send(ctx context.Context, batch []*call[claimRequest, uuid.UUID]) {
	if len(batch) > 1 {
		made, err := c.insert(ctx, batch)
		if !database.IsUniqueViolation(err) {
			for _, p := range batch {
				p.a, p.err = made[string(p.q.hash)], err
			}
			return
		}
	}
	for _, p := range batch {
		made, err := c.insert(ctx, []*call[claimRequest, uuid.UUID]{p})
		switch {
		case database.IsUniqueViolation(err):
			p.a, p.err = uuid.Nil, nil
		default:
			p.a, p.err = made[string(p.q.hash)], err
		}
	}
}

// insert makes every claim of batch with one insert, and returns their ids by code.
// The insert makes all of them or none.
func (c *claims) insert(ctx context.Context, batch []*call[claimRequest, uuid.UUID]) (map[string]uuid.UUID, error) {
	ins := entsql.Dialect(c.db.Dialect).Insert(logincode.Table).Columns(logincode.FieldID, logincode.FieldCodeHash,
		logincode.FieldState, logincode.FieldLeaseUntil, logincode.FieldExpiresAt, logincode.FieldCreatedAt)
	made := make(map[string]uuid.UUID, len(batch))
	for _, p := range batch {
		id := ids.New()
		ins.Values(id, p.q.hash, string(logincode.StatePending), p.q.lease, p.q.expires, p.q.now)
		made[string(p.q.hash)] = id
	}
	q, args := ins.Query()
	err := database.Retry(ctx, func() error {
		_, err := c.db.SQL.ExecContext(ctx, q, args...)
		return err
	})
	return made, err
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
