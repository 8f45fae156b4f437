package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/auditevent"
	"github.com/wxlogin/wxlogin/ent/user"
	"github.com/wxlogin/wxlogin/ent/weblogin"
	"github.com/wxlogin/wxlogin/internal/ids"
	"github.com/wxlogin/wxlogin/internal/input"
	"github.com/wxlogin/wxlogin/internal/ratelimit"
	"github.com/wxlogin/wxlogin/internal/wechat"
)

// A web login logs a browser in as a mini-program's user: the browser starts an
// attempt and shows its mini-program code, whose scene is the attempt's id; the person
// scans it, the mini-program (logged in silently) marks it scanned and confirms or
// cancels it; the browser, which alone holds the attempt's secret, takes a web session
// of that user, once. The attempt lives in the database, so that the browser may wait
// on one instance while the mini-program confirms on another.

// WebLoginState is where a web login stands, as the API names it.
type WebLoginState string

const (
	WebLoginWaiting   WebLoginState = "WAITING"
	WebLoginScanned   WebLoginState = "SCANNED"
	WebLoginConfirmed WebLoginState = "CONFIRMED"
	WebLoginCancelled WebLoginState = "CANCELLED"
	WebLoginExpired   WebLoginState = "EXPIRED"
)

// WebLoginStart is a started attempt: what the browser shows and keeps.
type WebLoginStart struct {
	ID          uuid.UUID
	Secret      string
	ExpiresAt   time.Time
	Image       []byte
	ContentType string
}

// WebLoginRequest is an attempt as the person confirming it sees it.
type WebLoginRequest struct {
	ID        uuid.UUID
	State     WebLoginState
	CreatedAt time.Time
	ExpiresAt time.Time
	IP        *string
	UserAgent *string
}

// WebLoginStatus is an attempt as its browser sees it; Session is set in the one answer
// that hands the web session over.
type WebLoginStatus struct {
	State     WebLoginState
	ExpiresAt time.Time
	Session   *Login
}

// Ended says whether nothing more will happen to the attempt.
func (st *WebLoginStatus) Ended() bool {
	return st.State == WebLoginCancelled || st.State == WebLoginExpired || st.State == WebLoginConfirmed
}

// WebLoginScene is the id as the mini-program code carries it: 32 hexadecimal
// characters, within WeChat's 32 for a scene.
func WebLoginScene(id uuid.UUID) string { return hex.EncodeToString(id[:]) }

var (
	// ErrTooManyWebLogins refuses an address that started too many web logins, or waits
	// for too many at once.
	ErrTooManyWebLogins error = tooManyWebLogins{}

	errWebLoginID        = input.Errorf("The web login id is malformed: pass the scene the mini-program was opened with (32 hexadecimal characters).")
	errWebLoginUnknown   = input.Errorf("There is no such web login: scan the code on the web page again.")
	errWebLoginSecret    = input.Errorf("There is no web login with this id and secret: start one with startWebLogin.")
	errWebLoginExpired   = input.Errorf("This web login has expired: refresh the web page for a new code and scan it again.")
	errWebLoginCancelled = input.Errorf("This web login was cancelled: refresh the web page for a new code.")
	errWebLoginDone      = input.Errorf("This web login was confirmed already: a code logs one browser in once.")
	errWebLoginOther     = input.Errorf("Another WeChat user scanned this code: only they can confirm or cancel it.")
)

type tooManyWebLogins struct{} // the API's message is graph's

func (tooManyWebLogins) Error() string {
	return "too many web logins from this address"
}

// parseWebLoginID reads an attempt's id as the API takes it: its scene, or the UUID.
func parseWebLoginID(s string) (uuid.UUID, error) {
	if len(s) != 32 && len(s) != 36 {
		return uuid.Nil, errWebLoginID
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, errWebLoginID
	}
	return id, nil
}

// StartWebLogin starts an attempt for the browser client and fetches its mini-program
// code from WeChat, with the default mini-program's access token. Nothing is written
// unless WeChat answered with the code.
func (s *Service) StartWebLogin(ctx context.Context, client Client) (*WebLoginStart, error) {
	now := s.clock()
	if refused := s.webLimiter.Take(limitKey(client.IP), now); refused != nil {
		return nil, fmt.Errorf("%w: %w", ErrTooManyWebLogins, refused)
	}
	if refused := s.webInstance.Take("", now); refused != nil {
		return nil, fmt.Errorf("%w: %w", ErrTooManyWebLogins, refused)
	}
	id := ids.New()
	secret := make([]byte, 32)
	rand.Read(secret)
	start := &WebLoginStart{ID: id, Secret: base64.RawURLEncoding.EncodeToString(secret), ExpiresAt: now.Add(s.policy.WebLoginTTL)}
	app := s.apps.Default()
	err := app.Tokens.Do(ctx, func(token string) error {
		var err error
		start.Image, start.ContentType, err = app.Client.GetWxaCodeUnlimit(ctx, token, wechat.WxaCodeRequest{
			Scene: WebLoginScene(id), Page: s.policy.WebLoginPage, EnvVersion: s.policy.WebLoginEnv,
			// A page only a trial or development version has yet is refused by the check.
			SkipPathCheck: s.policy.WebLoginEnv != "" && s.policy.WebLoginEnv != "release",
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("auth: the mini-program code of a web login: %w", err)
	}
	hash := sha256.Sum256([]byte(start.Secret))
	err = s.inTx(ctx, func(tx *ent.Tx, audit *auditor) error {
		if err := tx.WebLogin.Create().SetID(id).SetSecretHash(hash[:]).SetCreatedAt(now).SetExpiresAt(start.ExpiresAt).
			SetNillableIP(optional(client.IP)).SetNillableUserAgent(optional(client.UserAgent)).Exec(ctx); err != nil {
			return err
		}
		return audit.record(ctx, auditEntry{event: auditevent.EventWebLoginStarted, client: client, reason: WebLoginScene(id)})
	})
	if err != nil {
		return nil, err
	}
	return start, nil
}

// ScanWebLogin marks the attempt scanned by the current user, and says who asked.
func (s *Service) ScanWebLogin(ctx context.Context, cur *Current, id string) (*WebLoginRequest, error) {
	return s.moveWebLogin(ctx, cur, id, weblogin.StateScanned, auditevent.EventWebLoginScanned)
}

// ConfirmWebLogin confirms the attempt as the current user: its browser takes a web
// session of them. An attempt is confirmed at most once.
func (s *Service) ConfirmWebLogin(ctx context.Context, cur *Current, id string) (*WebLoginRequest, error) {
	return s.moveWebLogin(ctx, cur, id, weblogin.StateConfirmed, auditevent.EventWebLoginConfirmed)
}

// CancelWebLogin refuses the attempt.
func (s *Service) CancelWebLogin(ctx context.Context, cur *Current, id string) (*WebLoginRequest, error) {
	return s.moveWebLogin(ctx, cur, id, weblogin.StateCancelled, auditevent.EventWebLoginCancelled)
}

// moveWebLogin moves a waiting attempt, or one the current user scanned, to state: by
// the current user, who from then on is the only one who can move it. Scanning it again
// is no change.
func (s *Service) moveWebLogin(ctx context.Context, cur *Current, ref string, to weblogin.State, event auditevent.Event) (*WebLoginRequest, error) {
	id, err := parseWebLoginID(ref)
	if err != nil {
		return nil, err
	}
	userID, identityID := cur.Account.User.ID, cur.Account.Identity.ID
	var req *WebLoginRequest
	err = s.inTx(ctx, func(tx *ent.Tx, audit *auditor) error {
		q := tx.WebLogin.Query().Where(weblogin.ID(id))
		if s.db.Dialect == dialect.MySQL {
			q = q.ForUpdate()
		}
		wl, err := q.Only(ctx)
		switch {
		case ent.IsNotFound(err):
			return errWebLoginUnknown
		case err != nil:
			return err
		case wl.State == weblogin.StateConfirmed || wl.State == weblogin.StateTaken:
			return errWebLoginDone
		case wl.State == weblogin.StateCancelled:
			return errWebLoginCancelled
		case !audit.now.Before(wl.ExpiresAt):
			return errWebLoginExpired
		case wl.UserID != nil && *wl.UserID != userID:
			return errWebLoginOther
		case wl.State == to: // scanned again
			req = webLoginRequest(wl)
			return nil
		}
		wl, err = wl.Update().SetState(to).SetUserID(userID).SetIdentityID(identityID).Save(ctx)
		if err != nil {
			return err
		}
		req = webLoginRequest(wl)
		return audit.record(ctx, auditEntry{event: event, userID: &userID, sessionID: &cur.Session.ID,
			client: ClientFrom(ctx), reason: WebLoginScene(id)})
	})
	return req, err
}

func webLoginRequest(wl *ent.WebLogin) *WebLoginRequest {
	return &WebLoginRequest{ID: wl.ID, State: webLoginState(wl, time.Time{}), CreatedAt: wl.CreatedAt, ExpiresAt: wl.ExpiresAt, IP: wl.IP, UserAgent: wl.UserAgent}
}

// webLoginState is the attempt's state as the API shows it at now (zero: as stored).
func webLoginState(wl *ent.WebLogin, now time.Time) WebLoginState {
	switch {
	case wl.State == weblogin.StateTaken:
		return WebLoginConfirmed
	case wl.State == weblogin.StateCancelled:
		return WebLoginCancelled
	case !now.IsZero() && !now.Before(wl.ExpiresAt):
		return WebLoginExpired
	case wl.State == weblogin.StateConfirmed:
		return WebLoginConfirmed
	case wl.State == weblogin.StateScanned:
		return WebLoginScanned
	}
	return WebLoginWaiting
}

// WebLoginStatus is where the attempt stands, for the browser holding its secret. The
// first answer after the confirmation takes the web session, made for client then: it
// is never stored, and never handed out twice.
func (s *Service) WebLoginStatus(ctx context.Context, ref, secret string, client Client) (*WebLoginStatus, error) {
	id, err := parseWebLoginID(ref)
	if err != nil {
		return nil, err
	}
	wl, err := s.db.WebLogin.Get(ctx, id)
	switch {
	case ent.IsNotFound(err):
		return nil, errWebLoginSecret
	case err != nil:
		return nil, err
	}
	hash := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(hash[:], wl.SecretHash) != 1 {
		return nil, errWebLoginSecret
	}
	now := s.clock()
	st := &WebLoginStatus{State: webLoginState(wl, now), ExpiresAt: wl.ExpiresAt}
	if wl.State != weblogin.StateConfirmed || st.State != WebLoginConfirmed {
		return st, nil
	}
	err = s.inTx(ctx, func(tx *ent.Tx, audit *auditor) error {
		st.Session = nil
		sessID := ids.New()
		n, err := tx.WebLogin.Update().Where(weblogin.ID(id), weblogin.StateEQ(weblogin.StateConfirmed)).
			SetState(weblogin.StateTaken).SetSessionID(sessID).Save(ctx)
		if err != nil || n == 0 { // n == 0: another request of the browser took it
			return err
		}
		st.Session, err = s.openWebSession(ctx, tx, audit, *wl.IdentityID, sessID, client, WebLoginScene(id))
		return err
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// openWebSession opens a web session, sessID, of the identity's user for client, and
// ends their least recently used sessions beyond the cap, as a login does.
func (s *Service) openWebSession(ctx context.Context, tx *ent.Tx, audit *auditor, identityID, sessID uuid.UUID, client Client, scene string) (*Login, error) {
	ident, err := s.lockedIdentityByID(ctx, tx, identityID)
	if ent.IsNotFound(err) { // the account ended meanwhile
		return nil, errWebLoginUnknown
	} else if err != nil {
		return nil, err
	}
	u, err := s.lockedUserQuery(tx).Where(user.ID(ident.UserID)).Only(ctx)
	if err != nil {
		return nil, err
	}
	if err := blocked(u); err != nil {
		return nil, err
	}
	acct := Account{User: u, Identity: ident}
	now := audit.now
	sess, token := s.newSession(acct, client, now)
	sess.ID, sess.Web, sess.ExpiresAt = sessID, true, now.Add(s.policy.WebSessionTTL)
	if sess, err = createSession(ctx, tx, sess); err != nil {
		return nil, err
	}
	if err := audit.record(ctx, auditEntry{event: auditevent.EventWebLoginSucceeded, userID: &u.ID, sessionID: &sess.ID, client: client, reason: scene}); err != nil {
		return nil, err
	}
	if err := s.capSessions(ctx, tx, audit, now, pastCap{u.ID, sess.ID, client}); err != nil {
		return nil, err
	}
	return &Login{Token: token, ExpiresAt: s.SessionEnds(sess), Account: acct}, nil
}

// WatchWebLogin follows the attempt for the browser holding its secret: the status now,
// then each change, every WebLoginPoll (the confirmation may come through another
// instance), until it ends or ctx does. A wrong secret is refused at once.
func (s *Service) WatchWebLogin(ctx context.Context, ref, secret string, client Client) (<-chan *WebLoginStatus, error) {
	release, ok := s.webWatchers.take(limitKey(client.IP))
	if !ok { // one ends within WebLoginTTL
		return nil, fmt.Errorf("%w: %w", ErrTooManyWebLogins, &ratelimit.Error{RetryAfter: s.policy.WebLoginTTL})
	}
	first, err := s.WebLoginStatus(ctx, ref, secret, client)
	if err != nil {
		release()
		return nil, err
	}
	out := make(chan *WebLoginStatus, 1)
	out <- first
	go func() {
		defer release()
		defer close(out)
		last := first
		tick := time.NewTicker(WebLoginPoll)
		defer tick.Stop()
		for !last.Ended() {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			st, err := s.WebLoginStatus(ctx, ref, secret, client)
			if err != nil {
				if ctx.Err() == nil {
					s.log.WarnContext(ctx, "web login: reading its status", "error", err)
				}
				continue // the database may be back at the next tick
			}
			if st.State == last.State && st.Session == nil {
				continue
			}
			select {
			case out <- st:
			case <-ctx.Done():
				return
			}
			last = st
		}
	}()
	return out, nil
}

// WebLoginTTL is how long a web login's code can be scanned and confirmed.
func (s *Service) WebLoginTTL() time.Duration { return s.policy.WebLoginTTL }

// WebLoginPoll is how often a waiting browser's attempt is read: the confirmation may
// come through any instance.
const WebLoginPoll = 500 * time.Millisecond

// counter bounds how many of something each key holds at once.
type counter struct {
	mu  sync.Mutex
	max int
	n   map[string]int
}

// take holds one for key, or says there are max already; release gives it back.
func (c *counter) take(key string) (release func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] >= c.max {
		return nil, false
	}
	c.n[key]++
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.n[key]--; c.n[key] == 0 {
			delete(c.n, key)
		}
	}, true
}
