package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/logincode"
	"github.com/wxlogin/wxlogin/internal/claim"
	"github.com/wxlogin/wxlogin/internal/input"
	"github.com/wxlogin/wxlogin/internal/wechat"
	"github.com/wxlogin/wxlogin/internal/wxapp"
)

// A login, from the code to the session:
//
//  1. Login: the per-address limit, the code's checks, and the one exchange per code
//     this instance runs at a time (flights): requests with a code already being
//     exchanged here wait for it.
//  2. exchange: the code's claim (internal/claim, a row in login_codes): the first
//     request anywhere claims it; the others wait for its outcome, or log in again
//     from a done claim (relogin), at most MaxLoginsPerCode times in all.
//  3. exchangeClaimed: WeChat's code2Session, then the login goes with the logins that
//     come with it (sendFirstLogins, sendReturningLogins: one transaction, one statement of
//     each kind for all of them, built in statements.go), or, when the group cannot
//     make it, alone (alone.go, with ent's builders).

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
	app := s.apps.Default()
	if appid != "" {
		var err error
		if app, err = s.apps.Get(appid); err != nil {
			return nil, input.Errorf("appid is not one of this server's mini-programs: leave it out for the default, or pass the appid of the mini-program calling.")
		}
	}
	appid = app.Client.AppID()
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
				return nil, claim.ErrBusy
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
	login, rec, err := s.exchange(lctx, app.Client, hash, code, client)
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

// refusals are WeChat's refusals of a code that asking again would not change, by the
// name a failed claim keeps.
var refusals = map[string]error{
	"invalid_code": wechat.ErrInvalidCode,
	"risky_user":   wechat.ErrRiskyUser,
	"rate_limited": wechat.ErrRateLimited,
}

// exchange logs in with a code this instance is the first to see: from its claim's
// record if another instance or an earlier request exchanged it, otherwise by claiming
// it, asking WeChat and recording the result in the login's transaction. When that
// fails, no user or session is left, and the claim either keeps WeChat's final
// refusal for a few seconds or is removed.
func (s *Service) exchange(ctx context.Context, app wxapp.Client, hash []byte, code string, client Client) (*Login, codeRecord, error) {
	store := loginCode{s, hash}
	id, done, err := s.codeClaims.Take(ctx, store)
	switch {
	case err != nil:
		return nil, codeRecord{}, err
	case done != nil:
		login, err := s.relogin(ctx, done.Data, client)
		return login, done.Data, err
	}
	login, rec, err := s.exchangeClaimed(ctx, app, id, code, client)
	if err != nil {
		// The clean-up gets a moment past the login's deadline: the claim must not be
		// left for its lease to end.
		deadline, _ := ctx.Deadline()
		cctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline.Add(cleanupGrace))
		defer cancel()
		if rerr := s.codeClaims.Release(cctx, store, id, err); rerr != nil {
			s.log.ErrorContext(ctx, "auth: releasing a failed login's code claim", "error", rerr)
		}
	}
	return login, rec, err
}

// exchangeClaimed asks WeChat about a code this request has claimed, then logs the
// identity WeChat names in: with the logins that come with it, first logins and
// returning ones apart, or alone when the group could not (a row another login made,
// a claim gone, a unionid to link or a merge).
func (s *Service) exchangeClaimed(ctx context.Context, app wxapp.Client, claim uuid.UUID, code string, client Client) (*Login, codeRecord, error) {
	appid := app.AppID()
	ws, err := app.Code2Session(ctx, code)
	if err != nil {
		return nil, codeRecord{}, err
	}
	// Identities are never deleted, so a yes stays true: an identity this instance has
	// logged in is not asked about again.
	known := s.known.Contains(identityKey{appid, ws.OpenID})
	if !known {
		if known, err = s.exists.do(ctx, identityKey{appid, ws.OpenID}); err != nil {
			return nil, codeRecord{}, s.busyIfLate(ctx, err)
		}
	}
	group := &s.firstLogins
	if known {
		group = &s.returningLogins
	}
	q := groupLogin{appid, ws, claim, client}
	g, err := group.do(ctx, q)
	switch {
	case err == nil:
		for _, e := range g.entries {
			s.logAudit(ctx, e)
		}
	case errors.Is(err, errAlone):
		g, err = s.loginAlone(ctx, q, known)
	}
	if err != nil {
		return nil, codeRecord{}, s.busyIfLate(ctx, err)
	}
	s.known.Add(identityKey{appid, ws.OpenID}, struct{}{})
	return g.login, g.rec, nil
}

// busyIfLate reports a database error that came from running out of time as the login
// being too slow, not as an internal failure.
func (s *Service) busyIfLate(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return claim.ErrBusy
	}
	return err
}

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
		// moved it to another. Read locked, as every read before the session count
		// (openSessionAlone).
		ident, err := s.lockedIdentityByID(ctx, tx, rec.identityID)
		if ent.IsNotFound(err) {
			return errCodeSpent // the account was deleted since: the code opens nothing more
		}
		if err != nil {
			return err
		}
		u, err := tx.User.UpdateOneID(ident.UserID).SetLastLoginAt(now).Save(ctx)
		if err == nil {
			err = blocked(u)
		}
		if err != nil {
			return err
		}
		login, err = s.openSessionAlone(ctx, tx, audit, Account{User: u, Identity: ident}, rec.newUser, false, uuid.Nil, client, now)
		return err
	})
	return login, err
}
