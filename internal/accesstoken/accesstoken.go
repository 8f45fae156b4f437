// Package accesstoken keeps a mini-program's WeChat access token, shared through the
// database by every instance: a fleet makes about one stable_token call per token
// period however many instances run. It is cached in each instance, refreshed ahead of
// expiry by the one instance holding a short lease, and replaced once when WeChat
// rejects it (40001/40014/42001) so that the call can be retried once.
//
// When WeChat hands the rejected token back, the fleet forces a refresh, at most once
// per 30 s (when the last was forced is kept in the database), as WeChat allows. A
// token that stays rejected is then neither used nor asked about for a while: calls
// fail at once with ErrRejected rather than going round.
package accesstoken

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/accesstoken"
	"github.com/wxlogin/wxlogin/internal/claim"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/seal"
	"github.com/wxlogin/wxlogin/internal/wechat"
)

const (
	// refreshAhead: a token this close to its end is refreshed. WeChat hands out the
	// next token in a token's last 5 minutes; asking a little inside that window makes
	// sure the answer is the next one (our expiry, counted from when the call began,
	// is a little early).
	refreshAhead = 4 * time.Minute
	// minRefreshGap: a token refreshed this recently is used to its end rather than
	// asked for again, so that a failing WeChat is not asked on every call. Should it
	// run out in flight, Do refreshes once and retries.
	minRefreshGap = time.Minute
	// forceGap is WeChat's spacing of forced refreshes: one sooner than this after the
	// last does not refresh. The fleet forces at most once per forceGap.
	forceGap = 30 * time.Second
	// rejectedFor: a token WeChat keeps rejecting is not used or replaced for this
	// long at least, or until the fleet may force a refresh again if that is later.
	rejectedFor = 5 * time.Second
	// refreshTimeout bounds one refresh, waiting on another instance's included.
	refreshTimeout = 9 * time.Second
)

// ErrRejected: WeChat keeps rejecting the app's access token and no other can be had
// just now: WeChat hands the rejected token back and a forced refresh is not allowed
// yet (one per 30 s), is past WeChat's daily cap, or also hands it back; or the token
// it gave was rejected too. It matches wechat.ErrAccessToken as well.
var ErrRejected = fmt.Errorf("accesstoken: WeChat keeps rejecting the access token: %w", wechat.ErrAccessToken)

// Source is where tokens come from: the WeChat client.
type Source interface {
	AppID() string
	StableToken(ctx context.Context, forceRefresh bool) (wechat.AccessToken, error)
}

// Options are a Manager's dependencies.
type Options struct {
	DB      *database.DB
	Source  Source
	Keyring *seal.Keyring
	Now     func() time.Time // default time.Now
	Logger  *slog.Logger
}

// Manager hands out the current access token of one mini-program.
type Manager struct {
	db      *database.DB
	source  Source
	keyring *seal.Keyring
	now     func() time.Time
	log     *slog.Logger
	appid   string
	holder  string // this instance, in the lease

	refreshing singleflight.Group // one refresh at a time in this instance

	mu       sync.Mutex
	cached   token
	rejected *rejection // the token WeChat keeps rejecting; nil: none
}

type token struct {
	value       string
	expiresAt   time.Time
	refreshedAt time.Time
	forcedAt    time.Time // when the fleet last forced a refresh, as last read
}

// rejection is a token WeChat keeps rejecting: until then it is neither used nor
// replaced, and callers get the rejection at once.
type rejection struct {
	value string
	until time.Time
	why   string
	cause error // WeChat's last answer, when there is one
}

func (r *rejection) Error() string {
	msg := ErrRejected.Error() + ": " + r.why + "; not asking again before " + r.until.Format(time.RFC3339)
	if r.cause != nil {
		msg += ": " + r.cause.Error()
	}
	return msg
}

func (r *rejection) Unwrap() []error {
	if r.cause == nil {
		return []error{ErrRejected}
	}
	return []error{ErrRejected, r.cause}
}

// newRejection is a rejection of value lasting rejectedFor, or until the fleet may
// force a refresh again (forcedAt+forceGap) if that is later.
func (m *Manager) newRejection(value string, forcedAt time.Time, why string, cause error) *rejection {
	until := m.clock().Add(rejectedFor)
	if next := forcedAt.Add(forceGap); next.After(until) {
		until = next
	}
	return &rejection{value: value, until: until, why: why, cause: cause}
}

// New builds a Manager.
func New(o Options) *Manager {
	id := make([]byte, 8)
	rand.Read(id)
	m := &Manager{db: o.DB, source: o.Source, keyring: o.Keyring, now: o.Now, log: o.Logger, appid: o.Source.AppID(), holder: hex.EncodeToString(id)}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	return m
}

func (m *Manager) clock() time.Time { return m.now().UTC().Truncate(time.Microsecond) }

// fresh reports whether t can be used without refreshing.
func (t token) fresh(now time.Time) bool {
	if t.value == "" {
		return false
	}
	if now.Before(t.expiresAt.Add(-refreshAhead)) {
		return true
	}
	return now.Sub(t.refreshedAt) < minRefreshGap && now.Before(t.expiresAt)
}

// usable reports whether t still works, though it is due for a refresh.
func (t token) usable(now time.Time) bool {
	return t.value != "" && now.Before(t.expiresAt)
}

// Token returns a working access token.
func (m *Manager) Token(ctx context.Context) (string, error) {
	return m.get(ctx, "")
}

// Do calls fn with a token. When WeChat rejects the token (40001 invalid, 40014
// malformed, 42001 expired: another server refreshed it, or it ran out early), it gets
// a new one once and calls fn once more. When no other token can be had, or the new
// one is rejected too, Do fails with ErrRejected, and calls fail at once for a while.
func (m *Manager) Do(ctx context.Context, fn func(token string) error) error {
	tok, err := m.get(ctx, "")
	if err != nil {
		return err
	}
	if err = fn(tok); !errors.Is(err, wechat.ErrAccessToken) {
		return err
	}
	m.log.WarnContext(ctx, "wechat rejected the access token; replacing it once and retrying", "appid", m.appid, "error", err)
	if tok, err = m.get(ctx, tok); err != nil {
		return err
	}
	if err = fn(tok); errors.Is(err, wechat.ErrAccessToken) {
		return m.reject(ctx, tok, "its replacement was rejected too", err)
	}
	return err
}

// reject records that WeChat rejected value, the token just got to replace a rejected
// one.
func (m *Manager) reject(ctx context.Context, value, why string, cause error) error {
	m.mu.Lock()
	if m.rejects(value, m.clock()) { // a concurrent call got there first, and logged it
		r := m.rejected
		m.mu.Unlock()
		return r
	}
	var forcedAt time.Time
	if m.cached.value == value {
		forcedAt = m.cached.forcedAt
	}
	r := m.newRejection(value, forcedAt, why, cause)
	m.rejected = r
	m.mu.Unlock()
	m.logRejection(ctx, r)
	return r
}

// logRejection is the one line a rejection gets, however many calls it fails.
func (m *Manager) logRejection(ctx context.Context, r *rejection) {
	attrs := []any{"appid", m.appid, "why", r.why, "until", r.until}
	if r.cause != nil {
		attrs = append(attrs, "error", r.cause) // WeChat's errmsg, scrubbed of the token by the client
	}
	if errors.Is(r, wechat.ErrDailyQuota) {
		m.log.ErrorContext(ctx, "accesstoken: WeChat keeps rejecting the access token, and its daily cap of forced refreshes (20) is used up: "+
			"calls that need the token fail until WeChat hands out the next one near the token's expiry, or the cap resets the next day", attrs...)
		return
	}
	m.log.WarnContext(ctx, "accesstoken: WeChat keeps rejecting the access token; calls that need it fail until the fleet may ask again", attrs...)
}

// get returns a token other than bad: from this instance's cache, from the database,
// or from WeChat. One refresh runs at a time in an instance (singleflight), detached
// from any one caller; each caller waits under its own context. While the cached token still works, callers get it at
// once and the refresh ahead of expiry runs in the background.
func (m *Manager) get(ctx context.Context, bad string) (string, error) {
	for {
		now := m.clock()
		m.mu.Lock()
		cached := m.cached
		if cached.value != bad && cached.fresh(now) && !m.rejects(cached.value, now) {
			m.mu.Unlock()
			return cached.value, nil
		}
		if r := m.rejected; m.rejects(bad, now) || m.rejects(cached.value, now) {
			m.mu.Unlock()
			return "", r // WeChat keeps rejecting it: neither use nor replace it yet
		}
		m.mu.Unlock()
		refreshed := m.refreshing.DoChan("", func() (any, error) { return m.run(bad) })
		if cached.value != bad && cached.usable(now) {
			return cached.value, nil // still good: the refresh goes on in the background
		}
		var r singleflight.Result
		select {
		case r = <-refreshed:
		case <-ctx.Done():
			return "", fmt.Errorf("accesstoken: waiting for a token: %w", ctx.Err())
		}
		if r.Err != nil {
			return "", r.Err
		}
		if tok := r.Val.(token); tok.value != bad && tok.usable(m.clock()) {
			return tok.value, nil
		}
		// The refresh this caller joined had begun before the token it got ran out, or
		// before bad was rejected, and gave it back: go round again.
	}
}

// rejects reports whether value is the token WeChat keeps rejecting, at now.
// m.mu must be held.
func (m *Manager) rejects(value string, now time.Time) bool {
	r := m.rejected
	return r != nil && value != "" && r.value == value && now.Before(r.until)
}

// run is one refresh, with a time of its own: a caller that gives up does not fail
// the others waiting on it.
func (m *Manager) run(bad string) (token, error) {
	ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
	defer cancel()
	tok, err := m.load(ctx, bad)
	var r *rejection
	m.mu.Lock()
	switch {
	case err == nil:
		m.cached = tok
	case errors.As(err, &r):
		m.rejected = r
	}
	m.mu.Unlock()
	if r != nil {
		m.logRejection(ctx, r)
	}
	return tok, err
}

// load reads the shared token, or refreshes it under the lease, or waits for the
// instance that holds the lease.
func (m *Manager) load(ctx context.Context, bad string) (token, error) {
	for {
		now := m.clock()
		row, err := m.db.AccessToken.Get(ctx, m.appid)
		if err != nil && !ent.IsNotFound(err) {
			return token{}, err
		}
		current := m.open(row)
		if current.value == bad {
			current = token{forcedAt: current.forcedAt}
		}
		if current.fresh(now) {
			return current, nil
		}
		leased, err := m.takeLease(ctx, row, now)
		if err != nil {
			return token{}, err
		}
		if leased {
			return m.refresh(ctx, current, bad)
		}
		if current.usable(now) {
			return current, nil // another instance is refreshing; this one still works
		}
		select {
		case <-ctx.Done():
			return token{}, fmt.Errorf("accesstoken: waiting for another instance's refresh: %w", ctx.Err())
		case <-time.After(claim.Poll):
		}
	}
}

// open decrypts a stored token; a row without one, or one that does not open (the
// secret key changed), counts as no token.
func (m *Manager) open(row *ent.AccessToken) token {
	var t token
	if row == nil {
		return t
	}
	if row.ForcedAt != nil {
		t.forcedAt = *row.ForcedAt
	}
	if len(row.Token) == 0 || row.ExpiresAt == nil {
		return t
	}
	v, err := m.keyring.Open(row.Token, m.binding())
	if err != nil {
		return t
	}
	t.value, t.expiresAt, t.refreshedAt = string(v), *row.ExpiresAt, row.UpdatedAt
	return t
}

func (m *Manager) binding() []byte { return []byte("access_token\x00" + m.appid) }

// takeLease makes this instance the one that refreshes, if no other holds the lease.
func (m *Manager) takeLease(ctx context.Context, row *ent.AccessToken, now time.Time) (bool, error) {
	until := now.Add(claim.Lease) // the lease of every claim of wxlogin's
	if row == nil {
		err := m.db.AccessToken.Create().SetID(m.appid).SetLeaseUntil(until).SetLeaseHolder(m.holder).SetUpdatedAt(now).Exec(ctx)
		if database.IsUniqueViolation(err) {
			return false, nil
		}
		return err == nil, err
	}
	n, err := m.db.AccessToken.Update().
		Where(
			accesstoken.ID(m.appid),
			accesstoken.Version(row.Version), // unchanged since it was read
			accesstoken.Or(accesstoken.LeaseUntilIsNil(), accesstoken.LeaseUntilLT(now)),
		).
		SetLeaseUntil(until).
		SetLeaseHolder(m.holder).
		AddVersion(1).
		Save(ctx)
	return n == 1, err
}

// refresh asks WeChat for the token and shares it. bad is a token WeChat has just
// rejected, "" for a refresh ahead of expiry. When WeChat hands bad back, the fleet
// forces a new one, unless it did less than forceGap ago (current.forcedAt): then, or
// when the forced refresh fails for the daily cap or hands bad back too, bad is a
// rejection.
func (m *Manager) refresh(ctx context.Context, current token, bad string) (token, error) {
	forcedAt, forced := current.forcedAt, false
	fresh, err := m.source.StableToken(ctx, false)
	if err == nil && bad != "" && fresh.Token == bad {
		now := m.clock()
		forced, err = m.claimForce(ctx, now)
		switch {
		case err != nil:
		case !forced:
			m.releaseLease(ctx)
			return token{}, m.newRejection(bad, forcedAt, "WeChat hands it back, and the fleet forced a refresh less than 30 s ago", nil)
		default:
			forcedAt = now
			fresh, err = m.source.StableToken(ctx, true)
		}
	}
	now := m.clock()
	if err == nil && bad != "" && fresh.Token == bad {
		m.releaseLease(ctx) // forced within 30 s of a refresh the fleet did not make
		return token{}, m.newRejection(bad, forcedAt, "WeChat hands it back even when forced to refresh", nil)
	}
	if err != nil {
		m.releaseLease(ctx)
		if forced && errors.Is(err, wechat.ErrDailyQuota) {
			return token{}, m.newRejection(bad, forcedAt, "the forced refresh is past WeChat's daily cap", err)
		}
		if bad == "" && current.usable(now) {
			// Keep using it, and do not try again for minRefreshGap: a failing WeChat
			// should not be asked on every call.
			m.log.WarnContext(ctx, "accesstoken: refresh failed; the current token still works", "appid", m.appid, "error", err)
			current.refreshedAt = now
			return current, nil
		}
		return token{}, err
	}
	t := token{value: fresh.Token, expiresAt: fresh.ExpiresAt.UTC().Truncate(time.Microsecond), refreshedAt: now, forcedAt: forcedAt}
	err = m.db.AccessToken.Update().
		Where(accesstoken.ID(m.appid), accesstoken.LeaseHolder(m.holder)).
		SetToken(m.keyring.Seal([]byte(t.value), m.binding())).
		SetExpiresAt(t.expiresAt).
		SetUpdatedAt(now).
		ClearLeaseUntil().
		ClearLeaseHolder().
		AddVersion(1).
		Exec(ctx)
	if err != nil {
		return token{}, err
	}
	m.log.InfoContext(ctx, "accesstoken: refreshed", "appid", m.appid, "expires_at", t.expiresAt)
	return t, nil
}

// claimForce records in the shared row that this instance forces a refresh at now,
// unless one was forced less than forceGap ago: so the fleet forces at most once per
// forceGap, the attempt counted even if its answer is lost.
func (m *Manager) claimForce(ctx context.Context, now time.Time) (bool, error) {
	n, err := m.db.AccessToken.Update().
		Where(
			accesstoken.ID(m.appid),
			accesstoken.LeaseHolder(m.holder),
			accesstoken.Or(accesstoken.ForcedAtIsNil(), accesstoken.ForcedAtLTE(now.Add(-forceGap))),
		).
		SetForcedAt(now).
		AddVersion(1).
		Save(ctx)
	return n == 1, err
}

func (m *Manager) releaseLease(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := m.db.AccessToken.Update().
		Where(accesstoken.ID(m.appid), accesstoken.LeaseHolder(m.holder)).
		ClearLeaseUntil().ClearLeaseHolder().AddVersion(1).Exec(ctx); err != nil {
		m.log.WarnContext(ctx, "accesstoken: releasing the refresh lease", "error", err)
	}
}
