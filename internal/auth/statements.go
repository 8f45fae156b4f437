package auth

import (
	"context"
	stdsql "database/sql"
	"fmt"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/auditevent"
	"github.com/wxlogin/wxlogin/ent/identity"
	"github.com/wxlogin/wxlogin/ent/logincode"
	"github.com/wxlogin/wxlogin/ent/session"
	"github.com/wxlogin/wxlogin/ent/user"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/ids"
)

// The statements of a group of logins (sendFirstLogins, sendReturningLogins), a single login
// being a group of one: each builds one statement for every login of the group, with
// ent's column names, and sends it with the others in one round trip.

// newAccount is the user and identity a first login makes, not inserted yet.
func newAccount(appid, openid string, unionid *string, sealed []byte, now time.Time) (Account, error) {
	u := &ent.User{ID: ids.New(), Unionid: unionid, CreatedAt: now, LastLoginAt: now}
	ident := &ent.Identity{
		ID: ids.New(), Appid: appid, Openid: openid, Unionid: unionid,
		SessionKey: sealed, UserID: u.ID, CreatedAt: now, UpdatedAt: now,
	}
	if err := validIdentity(ident); err != nil {
		return Account{}, err
	}
	ident.Edges.User = u
	return Account{User: u, Identity: ident}, nil
}

// insertUsers is the insert of new users, one statement for a batch.
func (s *Service) insertUsers(us ...*ent.User) database.Statement {
	ins := sql.Dialect(s.db.Dialect).Insert(user.Table).
		Columns(user.FieldID, user.FieldUnionid, user.FieldCreatedAt, user.FieldLastLoginAt)
	for _, u := range us {
		ins.Values(u.ID, orNull(u.Unionid), u.CreatedAt, u.LastLoginAt)
	}
	q, args := ins.Query()
	return database.Statement{Query: q, Args: args}
}

// insertIdentities is the insert of new identities, one statement for a batch.
func (s *Service) insertIdentities(is ...*ent.Identity) database.Statement {
	ins := sql.Dialect(s.db.Dialect).Insert(identity.Table).
		Columns(identity.FieldID, identity.FieldAppid, identity.FieldOpenid, identity.FieldUnionid, identity.FieldSessionKey,
			identity.FieldUserID, identity.FieldCreatedAt, identity.FieldUpdatedAt)
	for _, i := range is {
		ins.Values(i.ID, i.Appid, i.Openid, orNull(i.Unionid), i.SessionKey, i.UserID, i.CreatedAt, i.UpdatedAt)
	}
	q, args := ins.Query()
	return database.Statement{Query: q, Args: args}
}

// returningAccounts reads the identities of keys with their users, in one query: by
// appid, the openids asked about. On MySQL the rows are locked, each identity and then
// its user, the order in which the logins' writes would lock them, so that the users
// returned are the ones committed last. Identities not there are left out.
func (s *Service) returningAccounts(ctx context.Context, tx *ent.Tx, keys ...identityKey) (map[identityKey]Account, error) {
	byApp := map[string][]any{}
	var apps []string
	for _, k := range keys {
		if byApp[k.appid] == nil {
			apps = append(apps, k.appid)
		}
		byApp[k.appid] = append(byApp[k.appid], k.openid)
	}
	it, ut := sql.Table(identity.Table).As("i"), sql.Table(user.Table).As("u")
	which := make([]*sql.Predicate, len(apps))
	for n, app := range apps {
		which[n] = sql.And(sql.EQ(it.C(identity.FieldAppid), app), sql.In(it.C(identity.FieldOpenid), byApp[app]...))
	}
	sel := sql.Dialect(s.db.Dialect).Select(append(identityColumns(it), userColumns(ut)...)...).
		From(it).Join(ut).On(it.C(identity.FieldUserID), ut.C(user.FieldID)).
		Where(sql.Or(which...))
	if s.db.Dialect == dialect.MySQL {
		sel.ForUpdate()
	}
	q, args := sel.Query()
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	accts := make(map[identityKey]Account, len(keys))
	err = readRows(rows, func(rows *stdsql.Rows) error {
		ident, u := &ent.Identity{}, &ent.User{}
		if err := rows.Scan(append(scanIdentity(ident), scanUser(u)...)...); err != nil {
			return err
		}
		ident.Edges.User = u
		accts[identityKey{ident.Appid, ident.Openid}] = Account{User: u, Identity: ident}
		return nil
	})
	return accts, err
}

// updateIdentities writes returning logins' session_keys, unionids and time (the same
// for all), one statement for a batch.
func (s *Service) updateIdentities(is ...*ent.Identity) database.Statement {
	ids, keys, unions := make([]any, len(is)), make([]any, len(is)), make([]any, len(is))
	for n, i := range is {
		ids[n], keys[n], unions[n] = i.ID, i.SessionKey, orNull(i.Unionid)
	}
	q, args := sql.Dialect(s.db.Dialect).Update(identity.Table).
		Set(identity.FieldSessionKey, perRow(identity.FieldID, ids, keys)).
		Set(identity.FieldUnionid, perRow(identity.FieldID, ids, unions)).
		Set(identity.FieldUpdatedAt, is[0].UpdatedAt).
		Where(sql.In(identity.FieldID, ids...)).
		Query()
	return database.Statement{Query: q, Args: args}
}

// updateLastLogin writes returning logins' time on their users, one statement for a
// batch: the users' LastLoginAt, the same for all.
func (s *Service) updateLastLogin(us ...*ent.User) database.Statement {
	ids := make([]any, len(us))
	for i, u := range us {
		ids[i] = u.ID
	}
	q, args := sql.Dialect(s.db.Dialect).Update(user.Table).
		Set(user.FieldLastLoginAt, us[0].LastLoginAt).
		Where(sql.In(user.FieldID, ids...)).
		Query()
	return database.Statement{Query: q, Args: args}
}

func sameString(a, b *string) bool { return a != nil && b != nil && *a == *b }

// newSession makes a session of the account, and its token, for insertSessions.
func (s *Service) newSession(acct Account, client Client, now time.Time) (*ent.Session, string) {
	token, hash := newToken()
	return &ent.Session{
		ID:         ids.New(),
		TokenHash:  hash,
		UserID:     acct.User.ID,
		IdentityID: acct.Identity.ID,
		CreatedAt:  now,
		LastSeenAt: now,
		ExpiresAt:  now.Add(s.policy.SessionTTL),
		IP:         optional(client.IP),
		UserAgent:  optional(client.UserAgent),
	}, token
}

// insertSessions is the insert of new sessions, one statement for a batch.
func (s *Service) insertSessions(ss ...*ent.Session) database.Statement {
	ins := sql.Dialect(s.db.Dialect).Insert(session.Table).
		Columns(session.FieldID, session.FieldTokenHash, session.FieldUserID, session.FieldIdentityID, session.FieldCreatedAt,
			session.FieldLastSeenAt, session.FieldExpiresAt, session.FieldIP, session.FieldUserAgent)
	for _, sess := range ss {
		ins.Values(sess.ID, sess.TokenHash, sess.UserID, sess.IdentityID, sess.CreatedAt,
			sess.LastSeenAt, sess.ExpiresAt, orNull(sess.IP), orNull(sess.UserAgent))
	}
	q, args := ins.Query()
	return database.Statement{Query: q, Args: args}
}

// codesDone turns claims on login codes into their records, one statement for a
// batch; it changes a row for each claim still held, and none for one that is not.
func (s *Service) codesDone(recs ...codeRecord) database.Statement {
	ids, users, idents, news := make([]any, len(recs)), make([]any, len(recs)), make([]any, len(recs)), make([]any, len(recs))
	for i, r := range recs {
		ids[i], users[i], idents[i], news[i] = r.id, r.userID, r.identityID, r.newUser
	}
	q, args := sql.Dialect(s.db.Dialect).Update(logincode.Table).
		Set(logincode.FieldState, string(logincode.StateDone)).
		Set(logincode.FieldLogins, 1).
		Set(logincode.FieldUserID, perRow(logincode.FieldID, ids, users)).
		Set(logincode.FieldIdentityID, perRow(logincode.FieldID, ids, idents)).
		Set(logincode.FieldNewUser, perRow(logincode.FieldID, ids, news)).
		Where(sql.And(sql.In(logincode.FieldID, ids...), sql.EQ(logincode.FieldState, string(logincode.StatePending)))).
		Query()
	return database.Statement{Query: q, Args: args}
}

// perRow is each row's own value of a column in an update of several: CASE id WHEN ?
// THEN ? … END.
func perRow(idColumn string, ids, values []any) sql.Querier {
	var b strings.Builder
	args := make([]any, 0, 2*len(ids))
	b.WriteString("CASE " + idColumn)
	for i, id := range ids {
		b.WriteString(" WHEN ? THEN ?")
		args = append(args, id, values[i])
	}
	b.WriteString(" END")
	return sql.Expr(b.String(), args...)
}

// liveCountsAfter runs stmts, then counts the users' live sessions, in one round trip on
// MySQL (database.ExecBatchQuery), and returns the rows the last statement affected and
// each user's count.
func (s *Service) liveCountsAfter(ctx context.Context, tx *ent.Tx, now time.Time, userIDs []uuid.UUID, stmts ...database.Statement) (int64, map[uuid.UUID]int64, error) {
	sel := sql.Dialect(s.db.Dialect).Select(session.FieldUserID, sql.Count("*")).From(sql.Table(session.Table))
	for _, p := range s.liveSessions(now, session.UserIDIn(userIDs...)) {
		p(sel)
	}
	q, args := sel.GroupBy(session.FieldUserID).Query()
	n, rows, err := s.db.ExecBatchQuery(ctx, tx, database.Statement{Query: q, Args: args}, stmts...)
	if err != nil {
		return 0, nil, err
	}
	live := make(map[uuid.UUID]int64, len(userIDs))
	err = readRows(rows, func(rows *stdsql.Rows) error {
		var id uuid.UUID
		var c int64
		if err := rows.Scan(&id, &c); err != nil {
			return err
		}
		live[id] = c
		return nil
	})
	return n, live, err
}

// pastCap is a user whose login put it past the cap: the session just made, which
// stays, and the login's client, for the audit rows.
type pastCap struct {
	userID, newID uuid.UUID
	client        Client
}

// evict ends the users' least recently used live sessions past MaxSessions. The
// sessions are read with a lock on MySQL, so that they include what the users' other
// logins committed, to choose which to end. That read locks every session of the users
// on the index, ended ones included, which housekeeping deletes in batches: the soak
// found the two deadlocking, so the everyday login, under the cap, does without it.
func (s *Service) evict(ctx context.Context, tx *ent.Tx, audit *auditor, now time.Time, users ...pastCap) error {
	userIDs := make([]uuid.UUID, len(users))
	newIDs := make([]uuid.UUID, len(users))
	clients := make(map[uuid.UUID]Client, len(users))
	for i, u := range users {
		userIDs[i], newIDs[i], clients[u.userID] = u.userID, u.newID, u.client
	}
	q := tx.Session.Query().
		Where(append(s.liveSessions(now, session.UserIDIn(userIDs...)), session.IDNotIn(newIDs...))...).
		Order(session.ByUserID(), session.ByLastSeenAt(sql.OrderDesc()), session.ByCreatedAt(sql.OrderDesc()), session.ByID(sql.OrderDesc()))
	if s.db.Dialect == dialect.MySQL {
		q = q.ForUpdate()
	}
	live, err := q.Select(session.FieldID, session.FieldUserID).All(ctx)
	if err != nil {
		return err
	}
	// Each user keeps its MaxSessions-1 most recently used, and the new one.
	var entries []auditEntry
	var ids []any
	kept := 0
	for i, sess := range live {
		if i == 0 || sess.UserID != live[i-1].UserID {
			kept = 0
		}
		if kept++; kept < s.policy.MaxSessions {
			continue
		}
		entries = append(entries, auditEntry{event: auditevent.EventSessionEvicted, userID: &live[i].UserID, sessionID: &live[i].ID, client: clients[sess.UserID]})
		ids = append(ids, sess.ID)
	}
	if len(ids) == 0 {
		return nil
	}
	// The sessions read are held (locked on MySQL; on SQLite the transaction holds the
	// database since its first write), so each is live until this ends it: their audit
	// rows (one insert) and one update go in one round trip, and the update must end
	// every one.
	q2, args := sql.Dialect(s.db.Dialect).Update(session.Table).
		Set(session.FieldRevokedAt, now).
		Where(sql.And(sql.In(session.FieldID, ids...), sql.IsNull(session.FieldRevokedAt))).
		Query()
	n, err := s.db.ExecBatch(ctx, tx, audit.statement(entries...), database.Statement{Query: q2, Args: args})
	if err != nil {
		return err
	}
	if n != int64(len(ids)) {
		return fmt.Errorf("auth: ended %d of the %d sessions past the cap that these logins held", n, len(ids))
	}
	for _, e := range entries {
		audit.recorded(e)
	}
	return nil
}
