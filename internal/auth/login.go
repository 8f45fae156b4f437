package auth

import (
	"context"
	"crypto/sha256"
	stdsql "database/sql"
	"errors"
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
	"github.com/wxlogin/wxlogin/internal/input"
	"github.com/wxlogin/wxlogin/internal/wechat"
)

// Login exchanges a wx.login code for a session. The same code sent again, at once or
// later, from this instance or another, logs the same user in again with a session of
// its own and reaches WeChat only once.
func (s *Service) Login(ctx context.Context, appid, code string, client Client) (*Login, error) {
	if err := s.limiter.take(client.IP, s.clock()); err != nil {
		return nil, err
	}
	if err := ValidateCode(code); err != nil {
		return nil, err
	}
	if s.devCodes != nil {
		code = s.devCodes(code)
	}
	if appid == "" {
		appid = s.defaultApp
	}
	app, ok := s.apps[appid]
	if !ok {
		return nil, input.Errorf("appid is not one of this server's mini-programs: leave it out for the default, or pass the appid of the mini-program calling.")
	}
	hash := CodeHash(appid, code)
	key := string(hash)
	// One deadline for the whole login, whoever does the work and however long it waits.
	deadline := time.Now().Add(s.loginTimeout)

	s.mu.Lock()
	if f, ok := s.flights[key]; ok {
		s.mu.Unlock()
		ctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		select {
		case <-f.done:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, ErrCodeBusy
			}
			return nil, ctx.Err()
		}
		if f.err != nil {
			return nil, f.err
		}
		return s.relogin(ctx, f.rec, client)
	}
	f := &flight{done: make(chan struct{}), err: errors.New("auth: the first login with this code did not finish")}
	s.flights[key] = f
	s.mu.Unlock()
	defer func() { // also when the exchange panics: waiters must never hang
		s.mu.Lock()
		delete(s.flights, key)
		s.mu.Unlock()
		close(f.done)
	}()

	// The exchange goes on if the caller goes away: once WeChat has consumed the code,
	// recording who it logs in is what lets the client's retry succeed.
	lctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	login, rec, err := s.exchange(lctx, app, hash, code, client)
	f.rec, f.err = rec, err
	return login, err
}

// CodeHash is the key of a code's record. A plain hash is enough: a code is random,
// single-use and dead within minutes, and a keyed hash would split instances during a
// key rotation.
func CodeHash(appid, code string) []byte {
	sum := sha256.Sum256([]byte("wxlogin login code\x00" + appid + "\x00" + code))
	return sum[:]
}

// definitive are WeChat's refusals that asking again would not change, by the name a
// failed code record keeps.
var definitive = map[string]error{
	"invalid_code": wechat.ErrInvalidCode,
	"risky_user":   wechat.ErrRiskyUser,
	"rate_limited": wechat.ErrRateLimited,
}

// exchange logs in with a code this instance is the first to see: from the database
// record if another instance or an earlier request exchanged it, otherwise by claiming
// it, asking WeChat, and recording the result in the login's transaction.
func (s *Service) exchange(ctx context.Context, app WeChat, hash []byte, code string, client Client) (*Login, codeRecord, error) {
	// A code is usually new: claiming it straight away costs one statement, and only a
	// claim that collides reads the record that is there.
	tryClaim := true
	for {
		if tryClaim {
			claim, err := s.claims.claim(ctx, hash, s.clock())
			if err != nil {
				return nil, codeRecord{}, s.busyIfLate(ctx, err)
			}
			if claim != 0 {
				return s.exchangeClaimed(ctx, app, claim, code, client)
			}
		}
		rec, err := s.db.LoginCode.Query().Where(logincode.CodeHash(hash)).Only(ctx)
		now := s.clock()
		tryClaim = true
		switch {
		case ent.IsNotFound(err):
			continue // the record went away meanwhile: claim it again
		case err != nil:
			return nil, codeRecord{}, s.busyIfLate(ctx, err)
		case !now.Before(rec.ExpiresAt) || (rec.State == logincode.StatePending && !now.Before(rec.LeaseUntil)):
			// Past its window, or a claim whose holder died: clear it and start over.
			if _, err := s.db.LoginCode.Delete().Where(logincode.ID(rec.ID), logincode.StateEQ(rec.State)).Exec(ctx); err != nil {
				return nil, codeRecord{}, s.busyIfLate(ctx, err)
			}
			continue
		case rec.State == logincode.StateDone:
			cr := codeRecord{id: rec.ID, userID: *rec.UserID, identityID: *rec.IdentityID, newUser: rec.NewUser}
			login, err := s.relogin(ctx, cr, client)
			return login, cr, err
		case rec.State == logincode.StateFailed:
			refusal := definitive[deref(rec.Failure)]
			if refusal == nil {
				refusal = wechat.ErrUnexpected
			}
			return nil, codeRecord{}, fmt.Errorf("auth: WeChat refused this code moments ago: %w", refusal)
		default: // pending on another instance: wait for it to finish or give up
			tryClaim = false
			select {
			case <-ctx.Done():
				return nil, codeRecord{}, ErrCodeBusy
			case <-time.After(claimPoll):
			}
		}
	}
}

// busyIfLate reports a database error that came from running out of time as the login
// being too slow, not as an internal failure.
func (s *Service) busyIfLate(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ErrCodeBusy
	}
	return err
}

// exchangeClaimed asks WeChat about a code this request has claimed, then creates or
// updates the identity and user, records the code as done and opens a session, all in
// one transaction: one it shares with the logins that come with it (firstLogins,
// returningLogins). When it fails, no user or session is left, and the claim either
// turns into a short-lived record of WeChat's final refusal or is removed.
func (s *Service) exchangeClaimed(ctx context.Context, app WeChat, claim int, code string, client Client) (*Login, codeRecord, error) {
	appid := app.AppID()
	ws, err := app.Code2Session(ctx, code)
	var known bool
	if err == nil {
		// Identities are never deleted, so a yes stays true: an identity this instance
		// has logged in is not asked about again.
		if known = s.known.has(appid, ws.OpenID); !known {
			known, err = s.exists.do(ctx, identityKey{appid, ws.OpenID})
		}
	}
	if err == nil {
		group := &s.firstLogins.batcher
		if known {
			group = &s.returningLogins.batcher
		}
		g, gerr := group.do(ctx, groupLogin{appid, ws, claim, client})
		switch {
		case gerr == nil:
			for _, e := range g.entries {
				s.logAudit(ctx, e)
			}
			s.known.add(appid, ws.OpenID)
			return g.login, g.rec, nil
		case !errors.Is(gerr, errAlone):
			err = s.busyIfLate(ctx, gerr)
			s.releaseClaim(ctx, claim, err)
			return nil, codeRecord{}, err
		}
		// The group could not log this one in: it goes on its own, where a row another
		// login made, a claim gone, a unionid to link or a merge is settled.
	}
	if err == nil {
		var login *Login
		var rec codeRecord
		err = s.inTx(ctx, func(tx *ent.Tx, audit *auditor) error {
			now := s.clock()
			acct, created, writes, err := s.upsertAccount(ctx, tx, audit, appid, ws, known, now)
			if err != nil {
				return err
			}
			open := func() error {
				rec = codeRecord{id: claim, userID: acct.User.ID, identityID: acct.Identity.ID, newUser: created}
				evict := scanLocked
				switch {
				case created:
					evict = noEviction
				case writes != nil: // the returning read locked the user before any plain read
					evict = countFirst
				}
				login, err = s.openSession(ctx, tx, audit, acct, created, evict, client, now, &codeDone{claim, rec}, writes...)
				return err
			}
			err = open()
			if created && database.IsUniqueViolation(err) {
				// A first login's inserts, which went first in the session's batch, met
				// a row another login made; nothing after them ran.
				if acct, err = s.firstLoginLost(ctx, tx, audit, acct, now); err != nil {
					return err
				}
				created, writes = false, nil
				err = open()
			}
			return err
		})
		if err == nil {
			s.known.add(appid, ws.OpenID)
			return login, rec, nil
		}
		err = s.busyIfLate(ctx, err)
	}
	s.releaseClaim(ctx, claim, err)
	return nil, codeRecord{}, err
}

// releaseClaim ends a claim whose login failed: a final refusal by WeChat is kept for
// failedTTL so that requests waiting on this code get the same answer without asking
// WeChat again; any other failure removes the claim so that a retry can try afresh.
func (s *Service) releaseClaim(ctx context.Context, claim int, cause error) {
	deadline, _ := ctx.Deadline()
	cctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline.Add(cleanupGrace))
	defer cancel()
	var err error
	if failure := failureName(cause); failure != "" {
		err = s.db.LoginCode.Update().
			Where(logincode.ID(claim), logincode.StateEQ(logincode.StatePending)).
			SetState(logincode.StateFailed).
			SetFailure(failure).
			SetExpiresAt(s.clock().Add(failedTTL)).
			Exec(cctx)
	} else {
		_, err = s.db.LoginCode.Delete().Where(logincode.ID(claim), logincode.StateEQ(logincode.StatePending)).Exec(cctx)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "auth: releasing a failed login's code claim", "error", err)
	}
}

func failureName(err error) string {
	for name, refusal := range definitive {
		if errors.Is(err, refusal) {
			return name
		}
	}
	return ""
}

// upsertAccount finds or creates the identity WeChat named and its user, with this
// exchange's session_key, and reports whether the user is new. Races between first
// logins are settled by the unique indexes, so there is one user per openid (and per
// unionid) however many race.
//
// A returning login, the usual one, reads both rows at once, locked; a first login
// reads nothing. Either leaves its writes to the caller (writes), to send with the
// session's: they are due before it. When created, a unique index may still refuse
// them; firstLoginLost then settles the race.
// known says whether the identity existed before the transaction (existence): a
// first login goes straight to its inserts, since a locking read of a row that is not
// there locks the gap where it would go, and two first logins whose openids share a
// gap then deadlock on their inserts.
func (s *Service) upsertAccount(ctx context.Context, tx *ent.Tx, audit *auditor, appid string, ws wechat.Session, known bool, now time.Time) (acct Account, created bool, writes []database.Statement, err error) {
	sealed := s.keyring.Seal([]byte(ws.SessionKey), IdentityBinding(appid, ws.OpenID))
	var unionid *string
	if ws.UnionID != "" {
		unionid = &ws.UnionID
	}

	err = &ent.NotFoundError{}
	if known {
		acct, err = s.returning(ctx, tx, appid, ws.OpenID)
	}
	switch {
	case err == nil && (unionid == nil || sameString(acct.User.Unionid, unionid)):
		ident, u := acct.Identity, acct.User
		ident.SessionKey, ident.UpdatedAt = sealed, now
		if unionid != nil {
			ident.Unionid = unionid
		}
		u.LastLoginAt = now
		return acct, false, []database.Statement{s.updateIdentities(ident), s.updateLastLogin(u)}, nil
	case err == nil:
		// WeChat names a unionid the user does not have yet: link it, which may merge
		// this user into the one that holds it.
		ident, err := tx.Identity.UpdateOneID(acct.Identity.ID).SetSessionKey(sealed).SetUnionid(*unionid).SetUpdatedAt(now).Save(ctx)
		if err != nil {
			return Account{}, false, nil, err
		}
		acct, _, err := s.touchUser(ctx, tx, ident, now)
		if err == nil {
			acct, err = s.linkUnionID(ctx, tx, audit, acct, *unionid, now)
		}
		return acct, false, nil, err
	case !ent.IsNotFound(err):
		return Account{}, false, nil, err
	}

	// The first login of this identity: usually a new person, so a new user and the
	// identity are inserted, first in the session's batch: the transaction's writes are one
	// round trip. The unique indexes settle races (firstLoginLost): one on
	// users.unionid when the person's first logins in two mini-programs run at once
	// (or another one's identity brought the unionid first), one on identities'
	// appid+openid when two first logins of this identity do.
	if acct, err = newAccount(appid, ws.OpenID, unionid, sealed, now); err != nil {
		return Account{}, false, nil, err
	}
	return acct, true, []database.Statement{s.insertUsers(acct.User), s.insertIdentities(acct.Identity)}, nil
}

// newAccount is the user and identity a first login makes, not inserted yet.
func newAccount(appid, openid string, unionid *string, sealed []byte, now time.Time) (Account, error) {
	u := &ent.User{ID: uuid.Must(uuid.NewV7()), Unionid: unionid, CreatedAt: now, LastLoginAt: now}
	ident := &ent.Identity{
		ID: uuid.Must(uuid.NewV7()), Appid: appid, Openid: openid, Unionid: unionid,
		SessionKey: sealed, UserID: u.ID, CreatedAt: now, UpdatedAt: now,
	}
	if err := validIdentity(ident); err != nil {
		return Account{}, err
	}
	ident.Edges.User = u
	return Account{User: u, Identity: ident}, nil
}

// firstLoginLost settles a first login whose inserts (upsertAccount's writes) a unique
// index refused, the batch stopping there: another login made the identity first, or
// the unionid already has a user, which this identity joins. It returns the account to
// log in.
func (s *Service) firstLoginLost(ctx context.Context, tx *ent.Tx, audit *auditor, acct Account, now time.Time) (Account, error) {
	u, ident := acct.User, acct.Identity
	appid, openid, sealed, unionid := ident.Appid, ident.Openid, ident.SessionKey, ident.Unionid
	// The user's row tells which index refused.
	made, err := tx.User.Query().Where(user.ID(u.ID)).Exist(ctx)
	switch {
	case err != nil:
		return Account{}, err
	case made:
		// The identity's: another login created it first. Drop this user.
		if err := tx.User.DeleteOneID(u.ID).Exec(ctx); err != nil {
			return Account{}, err
		}
	case unionid == nil:
		return Account{}, errors.New("auth: a new user's row was refused, and it has no unionid")
	default:
		// The user's: the unionid has a user already, which this identity joins, read
		// with a lock so that a holder committed while the insert waited is seen.
		holder, err := s.lockedUserQuery(tx).Where(user.Unionid(*unionid)).Only(ctx)
		if err != nil {
			return Account{}, err
		}
		ident.UserID = holder.ID
		_, err = s.db.ExecBatch(ctx, tx, s.insertIdentities(ident))
		switch {
		case err == nil:
			acct, _, err := s.touchUser(ctx, tx, ident, now)
			return acct, err
		case !database.IsUniqueViolation(err):
			return Account{}, err
		}
	}
	// Another login created this identity first (the unique index on appid+openid
	// refused ours, and the transaction goes on without it): log in as the winner's
	// user, with this exchange's session_key.
	q := tx.Identity.Query().Where(identity.Appid(appid), identity.Openid(openid))
	if s.db.Dialect == dialect.MySQL {
		q = q.ForUpdate() // read the committed winner, not this transaction's snapshot
	}
	if ident, err = q.Only(ctx); err != nil {
		return Account{}, err
	}
	if ident, err = ident.Update().SetSessionKey(sealed).SetNillableUnionid(unionid).SetUpdatedAt(now).Save(ctx); err != nil {
		return Account{}, err
	}
	acct, _, err = s.touchUser(ctx, tx, ident, now)
	if err == nil && unionid != nil {
		acct, err = s.linkUnionID(ctx, tx, audit, acct, *unionid, now)
	}
	return acct, err
}

// validIdentity checks what WeChat said against the identity's columns, as ent's
// builders would: the batch's raw inserts skip them.
func validIdentity(i *ent.Identity) error {
	err := errors.Join(identity.AppidValidator(i.Appid), identity.OpenidValidator(i.Openid))
	if i.Unionid != nil {
		err = errors.Join(err, identity.UnionidValidator(*i.Unionid), user.UnionidValidator(*i.Unionid))
	}
	if err != nil {
		return fmt.Errorf("auth: WeChat's answer does not fit an identity: %w", err)
	}
	return nil
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

func (s *Service) touchUser(ctx context.Context, tx *ent.Tx, ident *ent.Identity, now time.Time) (Account, bool, error) {
	user, err := tx.User.UpdateOneID(ident.UserID).SetLastLoginAt(now).Save(ctx)
	if err != nil {
		return Account{}, false, err
	}
	return Account{User: user, Identity: ident}, false, nil
}

// returningQuery reads identities and their users, for returning logins; the
// condition follows.
const returningQuery = `SELECT i.appid, i.openid, i.id, i.unionid, i.user_id, i.created_at,
	u.unionid, u.created_at, u.nickname, u.avatar_url, u.phone_number
FROM identities i
JOIN users u ON u.id = i.user_id
WHERE `

// returning reads the identity of appid and openid with its user (returningAccounts).
// It is ent's not-found error when the identity is new.
func (s *Service) returning(ctx context.Context, tx *ent.Tx, appid, openid string) (Account, error) {
	key := identityKey{appid, openid}
	accts, err := s.returningAccounts(ctx, tx, key)
	if err != nil {
		return Account{}, err
	}
	acct, ok := accts[key]
	if !ok {
		return Account{}, &ent.NotFoundError{}
	}
	return acct, nil
}

// returningAccounts reads the identities of keys with their users, in one query: by
// appid, the openids asked about. On MySQL the rows are locked, each identity and then
// its user, the order in which the logins' writes would lock them, so that the users
// returned are the ones committed last. Identities not there are left out.
func (s *Service) returningAccounts(ctx context.Context, tx *ent.Tx, keys ...identityKey) (map[identityKey]Account, error) {
	byApp := map[string][]string{}
	var apps []string
	for _, k := range keys {
		if byApp[k.appid] == nil {
			apps = append(apps, k.appid)
		}
		byApp[k.appid] = append(byApp[k.appid], k.openid)
	}
	var q strings.Builder
	q.WriteString(returningQuery)
	args := make([]any, 0, len(apps)+len(keys))
	for i, app := range apps {
		if i > 0 {
			q.WriteString(" OR ")
		}
		openids := byApp[app]
		q.WriteString("(i.appid = ? AND i.openid IN (?" + strings.Repeat(", ?", len(openids)-1) + "))")
		args = append(args, app)
		for _, o := range openids {
			args = append(args, o)
		}
	}
	if s.db.Dialect == dialect.MySQL {
		q.WriteString(" FOR UPDATE")
	}
	rows, err := tx.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, err
	}
	accts := make(map[identityKey]Account, len(keys))
	err = readRows(rows, func(rows *stdsql.Rows) error {
		ident := &ent.Identity{}
		u := &ent.User{}
		var iUnion, uUnion, nick, avatar stdsql.NullString
		var phone []byte
		if err := rows.Scan(&ident.Appid, &ident.Openid, &ident.ID, &iUnion, &ident.UserID, &ident.CreatedAt,
			&uUnion, &u.CreatedAt, &nick, &avatar, &phone); err != nil {
			return err
		}
		u.ID = ident.UserID
		ident.Unionid, u.Unionid, u.Nickname, u.AvatarURL = nullString(iUnion), nullString(uUnion), nullString(nick), nullString(avatar)
		if phone != nil {
			u.PhoneNumber = &phone
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
	upd := sql.Dialect(s.db.Dialect).Update(identity.Table)
	if len(is) == 1 {
		i := is[0]
		q, args := upd.Set(identity.FieldSessionKey, i.SessionKey).
			Set(identity.FieldUnionid, orNull(i.Unionid)).
			Set(identity.FieldUpdatedAt, i.UpdatedAt).
			Where(sql.EQ(identity.FieldID, i.ID)).
			Query()
		return database.Statement{Query: q, Args: args}
	}
	// Each identity's own, chosen by its id; the time is the same for all.
	var keys, unions strings.Builder
	var kargs, uargs []any
	ids := make([]any, len(is))
	for n, i := range is {
		keys.WriteString(" WHEN ? THEN ?")
		unions.WriteString(" WHEN ? THEN ?")
		kargs = append(kargs, i.ID, i.SessionKey)
		uargs = append(uargs, i.ID, orNull(i.Unionid))
		ids[n] = i.ID
	}
	id := identity.FieldID
	q, args := upd.Set(identity.FieldSessionKey, sql.Expr("CASE "+id+keys.String()+" END", kargs...)).
		Set(identity.FieldUnionid, sql.Expr("CASE "+id+unions.String()+" END", uargs...)).
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

// relogin opens a new session for a code that was already exchanged, unless the code
// has opened MaxLoginsPerCode already: then it is spent, as WeChat would say.
func (s *Service) relogin(ctx context.Context, rec codeRecord, client Client) (*Login, error) {
	var login *Login
	err := s.inTx(ctx, func(tx *ent.Tx, audit *auditor) error {
		now := s.clock()
		// Counted in the login's transaction: a login that fails spends nothing, and
		// the row's lock makes logins racing with one code take turns.
		n, err := tx.LoginCode.Update().
			Where(logincode.ID(rec.id), logincode.StateEQ(logincode.StateDone), logincode.LoginsLT(MaxLoginsPerCode)).
			AddLogins(1).
			Save(ctx)
		switch {
		case err != nil:
			return err
		case n == 0:
			return errCodeSpent
		}
		// The identity names the user now: a merge since the first exchange may have
		// moved it to another. Its plain read comes before the user's lock, so the
		// eviction reads the sessions with a lock (scanLocked).
		ident, err := tx.Identity.Get(ctx, rec.identityID)
		if err != nil {
			return err
		}
		acct, _, err := s.touchUser(ctx, tx, ident, now)
		if err != nil {
			return err
		}
		login, err = s.openSession(ctx, tx, audit, acct, rec.newUser, scanLocked, client, now, nil)
		return err
	})
	return login, err
}

// codeDone is the claim on a login code that a login turns into its record: the
// user and identity it logged in, for a retry of the same code.
type codeDone struct {
	claim int
	rec   codeRecord
}

// openSession creates a session for the account, records the login, and, when done is
// set, turns the code's claim into its record; the three go to the database in one
// round trip (ExecBatch), after the statements before. It then ends the user's least
// recently used sessions beyond the cap, as evict says.
func (s *Service) openSession(ctx context.Context, tx *ent.Tx, audit *auditor, acct Account, newUser bool, evict eviction, client Client, now time.Time, done *codeDone, before ...database.Statement) (*Login, error) {
	sess, token := s.newSession(acct, client, now)
	userID := acct.User.ID
	entry := auditEntry{event: auditevent.EventLoginSucceeded, userID: &userID, sessionID: &sess.ID, client: client}
	stmts := append(before, s.insertSessions(sess), audit.statement(entry))
	if done != nil { // last: the batch's count of rows is its
		stmts = append(stmts, s.codesDone(*done))
	}
	var n int64
	live := -1 // not counted yet
	var err error
	if evict == countFirst {
		// The count comes after the session's insert, which it includes, in its batch.
		var counts map[uuid.UUID]int64
		n, counts, err = s.liveCountsAfter(ctx, tx, now, []uuid.UUID{userID}, stmts...)
		live = int(counts[userID])
	} else {
		n, err = s.db.ExecBatch(ctx, tx, stmts...)
	}
	if err != nil {
		return nil, err
	}
	if done != nil && n != 1 {
		return nil, errClaimGone
	}
	audit.recorded(entry)
	if evict != noEviction {
		if err := s.evictBeyondCap(ctx, tx, audit, userID, sess.ID, client, now, live); err != nil {
			return nil, err
		}
	}
	return &Login{Token: token, ExpiresAt: s.expiresAt(sess), Account: acct, NewUser: newUser}, nil
}

// newSession makes a session of the account, and its token, for insertSessions.
func (s *Service) newSession(acct Account, client Client, now time.Time) (*ent.Session, string) {
	token, hash := newToken()
	return &ent.Session{
		ID:         uuid.Must(uuid.NewV7()),
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
func (s *Service) codesDone(dones ...codeDone) database.Statement {
	d := sql.Dialect(s.db.Dialect)
	if len(dones) == 1 {
		done := dones[0]
		q, args := d.Update(logincode.Table).
			Set(logincode.FieldState, string(logincode.StateDone)).
			Set(logincode.FieldLogins, 1).
			Set(logincode.FieldUserID, done.rec.userID).
			Set(logincode.FieldIdentityID, done.rec.identityID).
			Set(logincode.FieldNewUser, done.rec.newUser).
			Where(sql.And(sql.EQ(logincode.FieldID, done.claim), sql.EQ(logincode.FieldState, string(logincode.StatePending)))).
			Query()
		return database.Statement{Query: q, Args: args}
	}
	// Each claim's own user, identity and newness, chosen by its id.
	var users, idents, news strings.Builder
	var uargs, iargs, nargs []any
	ids := make([]any, len(dones))
	for i, done := range dones {
		users.WriteString(" WHEN ? THEN ?")
		idents.WriteString(" WHEN ? THEN ?")
		news.WriteString(" WHEN ? THEN ?")
		uargs = append(uargs, done.claim, done.rec.userID)
		iargs = append(iargs, done.claim, done.rec.identityID)
		nargs = append(nargs, done.claim, done.rec.newUser)
		ids[i] = done.claim
	}
	id := logincode.FieldID
	q, args := d.Update(logincode.Table).
		Set(logincode.FieldState, string(logincode.StateDone)).
		Set(logincode.FieldLogins, 1).
		Set(logincode.FieldUserID, sql.Expr("CASE "+id+users.String()+" END", uargs...)).
		Set(logincode.FieldIdentityID, sql.Expr("CASE "+id+idents.String()+" END", iargs...)).
		Set(logincode.FieldNewUser, sql.Expr("CASE "+id+news.String()+" END", nargs...)).
		Where(sql.And(sql.In(logincode.FieldID, ids...), sql.EQ(logincode.FieldState, string(logincode.StatePending)))).
		Query()
	return database.Statement{Query: q, Args: args}
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

// eviction says how a login ends its user's sessions past the cap.
type eviction int

const (
	// noEviction: the user is new to this transaction, and has no other session.
	noEviction eviction = iota
	// countFirst: the transaction locked the user's row before any plain read, so a
	// plain count sees what every earlier login of the user committed.
	countFirst
	// scanLocked: a plain read came first, and its snapshot may be older than the lock.
	scanLocked
)

// evictBeyondCap ends the least recently used live sessions past MaxSessions, never the
// one just made. Concurrent logins of one user are serialised by the user row this
// transaction has already locked.
//
// Most users are under the cap. A login that locked its user first (countFirst) knows
// it from live, a plain count (liveCountsAfter) made with the session's insert: the
// transaction's snapshot is taken by this first plain read, after the logins that held
// the user's row committed, and includes the session just made. Past the cap, or when
// live is -1 (not counted), the sessions are read again (evict).
func (s *Service) evictBeyondCap(ctx context.Context, tx *ent.Tx, audit *auditor, userID, newID uuid.UUID, client Client, now time.Time, live int) error {
	if live >= 0 && live <= s.policy.MaxSessions {
		return nil
	}
	return s.evict(ctx, tx, audit, now, pastCap{userID, newID, client})
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
