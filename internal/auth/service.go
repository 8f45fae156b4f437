// Package auth is login and sessions: a wx.login code becomes a user and a session, a
// bearer token becomes the session in the request's context, and logout revokes it.
package auth

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/identity"
	"github.com/wxlogin/wxlogin/ent/logincode"
	"github.com/wxlogin/wxlogin/ent/session"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/seal"
	"github.com/wxlogin/wxlogin/internal/wechat"
)

const (
	// loginBudget bounds one login end to end; the contract promises an answer within
	// 10 s whatever WeChat does, and the WeChat client's own deadline is shorter.
	loginBudget = 9500 * time.Millisecond
	// claimLease bounds how long a pending code claim holds off other instances, so a
	// crashed instance cannot hold a code for longer than one login can take.
	claimLease = 15 * time.Second
	// claimPoll is how often an instance waiting on another's claim looks again.
	claimPoll = 50 * time.Millisecond
	// lastSeenEvery limits writes of a session's last-seen time.
	lastSeenEvery = time.Minute
	// DefaultCodeWindow is how long a spent code logs its user in again: no longer than
	// the code's own life.
	DefaultCodeWindow = 5 * time.Minute
)

// WeChat is what login needs of the WeChat client.
type WeChat interface {
	AppID() string
	Code2Session(ctx context.Context, code string) (wechat.Session, error)
}

// Options are the Service's dependencies and policy.
type Options struct {
	DB      *database.DB
	WeChat  WeChat
	Keyring *seal.Keyring
	// SecretKey derives the key that hashes login codes; all instances must share it.
	SecretKey  []byte
	SessionTTL time.Duration
	CodeWindow time.Duration    // default DefaultCodeWindow
	Now        func() time.Time // default time.Now
	Logger     *slog.Logger
}

// Service logs people in and keeps their sessions.
type Service struct {
	db         *database.DB
	wechat     WeChat
	keyring    *seal.Keyring
	codes      codeHasher
	sessionTTL time.Duration
	codeWindow time.Duration
	now        func() time.Time
	log        *slog.Logger

	mu      sync.Mutex
	flights map[string]*flight // codes being exchanged by this instance, by hash
}

// flight is one code exchange in progress; requests with the same code wait for it.
type flight struct {
	done chan struct{}
	rec  codeRecord
	err  error
}

// codeRecord is what a code exchange established: who the code logs in.
type codeRecord struct {
	userID, identityID uuid.UUID
	newUser            bool
}

// Client describes where a request comes from; it is stored with the session.
type Client struct {
	IP        string
	UserAgent string
}

// Account is a user as seen through one of their WeChat identities.
type Account struct {
	User     *ent.User
	Identity *ent.Identity
}

// Login is the result of a successful login.
type Login struct {
	Token     string
	ExpiresAt time.Time
	Account   Account
	NewUser   bool
}

// Current is the session a request authenticated with.
type Current struct {
	Session *ent.Session
	Account Account
}

// New builds a Service.
func New(o Options) (*Service, error) {
	if o.DB == nil || o.WeChat == nil || o.Keyring == nil || len(o.SecretKey) == 0 {
		return nil, errors.New("auth: DB, WeChat, Keyring and SecretKey are required")
	}
	codeKey, err := hkdf.Key(sha256.New, o.SecretKey, nil, "wxlogin login-code hmac", 32)
	if err != nil {
		return nil, err
	}
	s := &Service{
		db:         o.DB,
		wechat:     o.WeChat,
		keyring:    o.Keyring,
		codes:      codeHasher{key: codeKey},
		sessionTTL: o.SessionTTL,
		codeWindow: o.CodeWindow,
		now:        o.Now,
		log:        o.Logger,
		flights:    make(map[string]*flight),
	}
	if s.sessionTTL <= 0 {
		s.sessionTTL = 30 * 24 * time.Hour
	}
	if s.codeWindow <= 0 || s.codeWindow > DefaultCodeWindow {
		s.codeWindow = DefaultCodeWindow
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// clock is the current time as the database stores it: UTC, microseconds.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Login exchanges a wx.login code for a session. The same code sent again, at once or
// later, from this instance or another, logs the same user in again with a session of
// its own and reaches WeChat only once.
func (s *Service) Login(ctx context.Context, code string, client Client) (*Login, error) {
	if err := ValidateCode(code); err != nil {
		return nil, err
	}
	key := string(s.codes.hash(code))

	s.mu.Lock()
	if f, ok := s.flights[key]; ok {
		s.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if f.err != nil {
			return nil, f.err
		}
		return s.relogin(ctx, f.rec, client)
	}
	f := &flight{done: make(chan struct{})}
	s.flights[key] = f
	s.mu.Unlock()

	// The exchange goes on if the caller goes away: once WeChat has consumed the code,
	// recording who it logs in is what lets the client's retry succeed.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loginBudget)
	defer cancel()
	login, rec, err := s.exchange(lctx, []byte(key), code, client)
	f.rec, f.err = rec, err

	s.mu.Lock()
	delete(s.flights, key)
	s.mu.Unlock()
	close(f.done)
	return login, err
}

// exchange logs in with a code this instance is the first to see: from the database
// record if another instance or an earlier request exchanged it, otherwise by claiming
// it, asking WeChat, and recording the result in the login's transaction.
func (s *Service) exchange(ctx context.Context, hash []byte, code string, client Client) (*Login, codeRecord, error) {
	for {
		rec, err := s.db.LoginCode.Query().Where(logincode.CodeHash(hash)).Only(ctx)
		now := s.clock()
		switch {
		case ent.IsNotFound(err):
			claimed, err := s.claim(ctx, hash, now)
			if err != nil {
				return nil, codeRecord{}, err
			}
			if claimed {
				return s.exchangeClaimed(ctx, hash, code, client)
			}
			continue // another request claimed it first: look again
		case err != nil:
			return nil, codeRecord{}, err
		case !now.Before(rec.ExpiresAt) || (rec.State == logincode.StatePending && !now.Before(rec.LeaseUntil)):
			// Past its window, or a claim whose holder died: clear it and start over.
			if _, err := s.db.LoginCode.Delete().Where(logincode.ID(rec.ID), logincode.StateEQ(rec.State)).Exec(ctx); err != nil {
				return nil, codeRecord{}, err
			}
			continue
		case rec.State == logincode.StateDone:
			cr := codeRecord{userID: *rec.UserID, identityID: *rec.IdentityID, newUser: rec.NewUser}
			login, err := s.relogin(ctx, cr, client)
			return login, cr, err
		default: // pending on another instance: wait for it to finish or give up
			select {
			case <-ctx.Done():
				return nil, codeRecord{}, ErrCodeBusy
			case <-time.After(claimPoll):
			}
		}
	}
}

// claim inserts a pending record for the code. False means another request holds it.
func (s *Service) claim(ctx context.Context, hash []byte, now time.Time) (bool, error) {
	err := s.db.LoginCode.Create().
		SetCodeHash(hash).
		SetState(logincode.StatePending).
		SetLeaseUntil(now.Add(claimLease)).
		SetExpiresAt(now.Add(s.codeWindow)).
		SetCreatedAt(now).
		Exec(ctx)
	if database.IsUniqueViolation(err) {
		return false, nil
	}
	return err == nil, err
}

// exchangeClaimed asks WeChat about a code this request has claimed, then creates or
// updates the identity and user, records the code as done and opens a session, all in
// one transaction. On any failure the claim is removed: a failed login leaves nothing.
func (s *Service) exchangeClaimed(ctx context.Context, hash []byte, code string, client Client) (*Login, codeRecord, error) {
	appid := s.wechat.AppID()
	ws, err := s.wechat.Code2Session(ctx, code)
	if err == nil {
		var login *Login
		var rec codeRecord
		err = s.db.WithTx(ctx, func(tx *ent.Tx) error {
			now := s.clock()
			acct, created, err := s.upsertAccount(ctx, tx, appid, ws, now)
			if err != nil {
				return err
			}
			rec = codeRecord{userID: acct.User.ID, identityID: acct.Identity.ID, newUser: created}
			n, err := tx.LoginCode.Update().
				Where(logincode.CodeHash(hash), logincode.StateEQ(logincode.StatePending)).
				SetState(logincode.StateDone).
				SetUserID(rec.userID).
				SetIdentityID(rec.identityID).
				SetNewUser(created).
				Save(ctx)
			if err != nil {
				return err
			}
			if n != 1 {
				return errors.New("auth: the claim on this login code was lost")
			}
			login, err = s.openSession(ctx, tx, acct, created, client, now)
			return err
		})
		if err == nil {
			return login, rec, nil
		}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if _, derr := s.db.LoginCode.Delete().Where(logincode.CodeHash(hash), logincode.StateEQ(logincode.StatePending)).Exec(cctx); derr != nil {
		s.log.Error("auth: removing a failed login code claim", "error", derr)
	}
	return nil, codeRecord{}, err
}

// upsertAccount finds or creates the identity for (appid, openid) and its user, and
// stores the new session_key sealed. Racing first logins of one openid are settled by
// the unique index through an upsert: the loser's provisional user is removed in its
// own transaction, so there is one user however many race.
func (s *Service) upsertAccount(ctx context.Context, tx *ent.Tx, appid string, ws wechat.Session, now time.Time) (Account, bool, error) {
	sealed := s.keyring.Seal([]byte(ws.SessionKey), IdentityBinding(appid, ws.OpenID))
	var unionid *string
	if ws.UnionID != "" {
		unionid = &ws.UnionID
	}

	ident, err := tx.Identity.Query().Where(identity.Appid(appid), identity.Openid(ws.OpenID)).Only(ctx)
	switch {
	case err == nil:
		upd := ident.Update().SetSessionKey(sealed).SetUpdatedAt(now)
		if unionid != nil {
			upd.SetUnionid(*unionid)
		}
		if ident, err = upd.Save(ctx); err != nil {
			return Account{}, false, err
		}
		return s.touchUser(ctx, tx, ident, now)
	case !ent.IsNotFound(err):
		return Account{}, false, err
	}

	user, err := tx.User.Create().SetCreatedAt(now).SetLastLoginAt(now).Save(ctx)
	if err != nil {
		return Account{}, false, err
	}
	err = tx.Identity.Create().
		SetAppid(appid).
		SetOpenid(ws.OpenID).
		SetNillableUnionid(unionid).
		SetSessionKey(sealed).
		SetUserID(user.ID).
		SetCreatedAt(now).
		SetUpdatedAt(now).
		OnConflictColumns(identity.FieldAppid, identity.FieldOpenid).
		Update(func(u *ent.IdentityUpsert) {
			u.UpdateSessionKey()
			u.UpdateUpdatedAt()
			if unionid != nil {
				u.UpdateUnionid()
			}
		}).
		Exec(ctx)
	if err != nil {
		return Account{}, false, err
	}
	q := tx.Identity.Query().Where(identity.Appid(appid), identity.Openid(ws.OpenID))
	if s.db.Dialect == dialect.MySQL {
		q = q.ForUpdate() // read the committed winner, not this transaction's snapshot
	}
	if ident, err = q.Only(ctx); err != nil {
		return Account{}, false, err
	}
	if ident.UserID == user.ID {
		ident.Edges.User = user
		return Account{User: user, Identity: ident}, true, nil
	}
	// Another login created this identity first: drop the provisional user.
	if err := tx.User.DeleteOneID(user.ID).Exec(ctx); err != nil {
		return Account{}, false, err
	}
	return s.touchUser(ctx, tx, ident, now)
}

func (s *Service) touchUser(ctx context.Context, tx *ent.Tx, ident *ent.Identity, now time.Time) (Account, bool, error) {
	user, err := tx.User.UpdateOneID(ident.UserID).SetLastLoginAt(now).Save(ctx)
	if err != nil {
		return Account{}, false, err
	}
	return Account{User: user, Identity: ident}, false, nil
}

// relogin opens a new session for a code that was already exchanged.
func (s *Service) relogin(ctx context.Context, rec codeRecord, client Client) (*Login, error) {
	var login *Login
	err := s.db.WithTx(ctx, func(tx *ent.Tx) error {
		now := s.clock()
		ident, err := tx.Identity.Get(ctx, rec.identityID)
		if err != nil {
			return err
		}
		acct, _, err := s.touchUser(ctx, tx, ident, now)
		if err != nil {
			return err
		}
		login, err = s.openSession(ctx, tx, acct, rec.newUser, client, now)
		return err
	})
	return login, err
}

func (s *Service) openSession(ctx context.Context, tx *ent.Tx, acct Account, newUser bool, client Client, now time.Time) (*Login, error) {
	token, hash := newToken()
	expires := now.Add(s.sessionTTL)
	err := tx.Session.Create().
		SetTokenHash(hash).
		SetUserID(acct.User.ID).
		SetIdentityID(acct.Identity.ID).
		SetCreatedAt(now).
		SetLastSeenAt(now).
		SetExpiresAt(expires).
		SetNillableIP(optional(clip(client.IP, 64))).
		SetNillableUserAgent(optional(clip(client.UserAgent, 512))).
		Exec(ctx)
	if err != nil {
		return nil, err
	}
	return &Login{Token: token, ExpiresAt: expires, Account: acct, NewUser: newUser}, nil
}

// Authenticate turns a bearer token into its live session.
func (s *Service) Authenticate(ctx context.Context, token string) (*Current, error) {
	if !wellFormed(token) {
		return nil, errMalformedToken
	}
	sess, err := s.db.Session.Query().
		Where(session.TokenHash(hashToken(token))).
		WithUser().
		WithIdentity().
		Only(ctx)
	if ent.IsNotFound(err) {
		return nil, errInvalidToken
	}
	if err != nil {
		return nil, fmt.Errorf("auth: looking up a session: %w", err)
	}
	now := s.clock()
	if sess.RevokedAt != nil || !now.Before(sess.ExpiresAt) {
		return nil, errInvalidToken
	}
	if now.Sub(sess.LastSeenAt) >= lastSeenEvery {
		// Best effort: a failed write must not fail the request.
		if err := s.db.Session.UpdateOneID(sess.ID).SetLastSeenAt(now).Exec(ctx); err != nil {
			s.log.Warn("auth: recording a session's last-seen time", "error", err)
		} else {
			sess.LastSeenAt = now
		}
	}
	return &Current{Session: sess, Account: Account{User: sess.Edges.User, Identity: sess.Edges.Identity}}, nil
}

// Logout revokes the current session at once; its token stops working everywhere.
func (s *Service) Logout(ctx context.Context, cur *Current) error {
	_, err := s.db.Session.Update().
		Where(session.ID(cur.Session.ID), session.RevokedAtIsNil()).
		SetRevokedAt(s.clock()).
		Save(ctx)
	return err
}

// IdentityBinding is the additional data a session_key is sealed with: it ties the
// sealed value to its identity, so a value copied to another row does not open.
func IdentityBinding(appid, openid string) []byte {
	return []byte(appid + "\x00" + openid)
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// clip shortens s to at most n bytes without splitting a character, and drops invalid
// UTF-8 that a strict MySQL column would refuse.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
