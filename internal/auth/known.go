package auth

import (
	"context"
	"database/sql"

	entsql "entgo.io/ent/dialect/sql"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/wxlogin/wxlogin/ent/identity"
	"github.com/wxlogin/wxlogin/internal/database"
)

// maxKnownIdentities bounds knownIdentities: about 100 bytes each.
const maxKnownIdentities = 50_000

// knownIdentities remembers the identities this instance has seen in the database, so
// that a returning login need not ask whether its identity exists (existence), the
// least recently seen forgotten first. Identities are never deleted, so what it holds
// stays true on every instance; what it lacks is asked.
type knownIdentities = lru.Cache[identityKey, struct{}]

type identityKey struct{ appid, openid string }

func newKnownIdentities() *knownIdentities {
	k, err := lru.New[identityKey, struct{}](maxKnownIdentities)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return k
}

// existence asks the database whether identities exist, with a plain read outside any
// transaction: it takes no lock, and no snapshot for the login's transaction. The
// questions of logins that ask together go in one query.
type existence struct {
	db *database.DB
	batcher[identityKey, bool]
}

func newExistence(db *database.DB) *existence {
	e := &existence{db: db}
	e.batcher = batcher[identityKey, bool]{name: "identity existence", max: maxBatch, send: e.send}
	return e
}

// send reads which of a batch's identities exist: by appid, the openids among those
// asked about.
func (e *existence) send(ctx context.Context, batch []*call[identityKey, bool]) {
	byApp := map[string][]any{}
	var apps []string
	for _, c := range batch {
		if byApp[c.q.appid] == nil {
			apps = append(apps, c.q.appid)
		}
		byApp[c.q.appid] = append(byApp[c.q.appid], c.q.openid)
	}
	preds := make([]*entsql.Predicate, len(apps))
	for i, app := range apps {
		preds[i] = entsql.And(entsql.EQ(identity.FieldAppid, app), entsql.In(identity.FieldOpenid, byApp[app]...))
	}
	q, args := entsql.Dialect(e.db.Dialect).Select(identity.FieldAppid, identity.FieldOpenid).
		From(entsql.Table(identity.Table)).
		Where(entsql.Or(preds...)).
		Query()
	found := map[identityKey]bool{}
	err := database.Retry(ctx, func() error {
		rows, err := e.db.SQL.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		return readRows(rows, func(rows *sql.Rows) error {
			var k identityKey
			if err := rows.Scan(&k.appid, &k.openid); err != nil {
				return err
			}
			found[k] = true
			return nil
		})
	})
	for _, c := range batch {
		c.a, c.err = found[c.q], err
	}
}
