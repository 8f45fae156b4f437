// Package accesstoken keeps a mini-program's WeChat access token, shared through the
// database by every instance: a fleet makes about one stable_token call per token
// period however many instances run. It is cached in each instance, refreshed ahead of
// expiry by the one instance holding a short lease, and refreshed once when WeChat
// rejects it (40001/42001) so that the call can be retried once.
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

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/accesstoken"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/seal"
	"github.com/wxlogin/wxlogin/internal/wechat"
)

const (
	// refreshAhead: a token this close to its end is refreshed.
	refreshAhead = 5 * time.Minute
	// minRefreshGap: WeChat's stable_token hands back the same token until it ends, so
	// a token refreshed this recently is used to its end rather than asked for again.
	// Should it run out in flight, Do refreshes once and retries.
	minRefreshGap = time.Minute
	// lease bounds how long one instance holds off the others while it refreshes.
	lease = 10 * time.Second
	poll  = 50 * time.Millisecond
	// refreshTimeout bounds one refresh, waiting on another instance's included.
	refreshTimeout = 9 * time.Second
)

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

	mu     sync.Mutex
	cached token
	flight *flight
}

type token struct {
	value       string
	expiresAt   time.Time
	refreshedAt time.Time
}

type flight struct {
	done chan struct{}
	tok  token
	err  error
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

// Do calls fn with a token. When WeChat rejects the token (40001 invalid, 42001
// expired: another server refreshed it, or it ran out early), it gets a new one once
// and calls fn once more.
func (m *Manager) Do(ctx context.Context, fn func(token string) error) error {
	tok, err := m.get(ctx, "")
	if err != nil {
		return err
	}
	if err = fn(tok); !errors.Is(err, wechat.ErrAccessToken) {
		return err
	}
	m.log.WarnContext(ctx, "wechat rejected the access token; refreshing once and retrying", "appid", m.appid)
	if tok, err = m.get(ctx, tok); err != nil {
		return err
	}
	return fn(tok)
}

// get returns a token other than bad: from this instance's cache, from the database,
// or from WeChat. One refresh runs at a time in an instance, detached from any one
// caller (a caller that gives up does not fail the others waiting on it); each caller
// waits under its own context. While the cached token still works, callers get it at
// once and the refresh ahead of expiry runs in the background.
func (m *Manager) get(ctx context.Context, bad string) (string, error) {
	for {
		now := m.clock()
		m.mu.Lock()
		cached := m.cached
		if cached.value != bad && cached.fresh(now) {
			m.mu.Unlock()
			return cached.value, nil
		}
		f := m.flight
		if f == nil {
			f = &flight{done: make(chan struct{})}
			m.flight = f
			go m.run(f, bad)
		}
		m.mu.Unlock()
		if cached.value != bad && cached.usable(now) {
			return cached.value, nil // still good: the refresh goes on in the background
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return "", fmt.Errorf("accesstoken: waiting for a token: %w", ctx.Err())
		}
		if f.err != nil {
			return "", f.err
		}
		if f.tok.value != bad && f.tok.usable(m.clock()) {
			return f.tok.value, nil
		}
		// The refresh this caller joined had begun before the token it got ran out
		// (WeChat hands back the current token until its end): go round again.
	}
}

// run is one refresh, with a time of its own.
func (m *Manager) run(f *flight, bad string) {
	ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
	defer cancel()
	f.tok, f.err = m.load(ctx, bad)
	m.mu.Lock()
	m.flight = nil
	if f.err == nil {
		m.cached = f.tok
	}
	m.mu.Unlock()
	close(f.done)
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
			current = token{}
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
		case <-time.After(poll):
		}
	}
}

// open decrypts a stored token; a row without one, or one that does not open (the
// secret key changed), counts as no token.
func (m *Manager) open(row *ent.AccessToken) token {
	if row == nil || len(row.Token) == 0 || row.ExpiresAt == nil {
		return token{}
	}
	v, err := m.keyring.Open(row.Token, m.binding())
	if err != nil {
		return token{}
	}
	return token{value: string(v), expiresAt: *row.ExpiresAt, refreshedAt: row.UpdatedAt}
}

func (m *Manager) binding() []byte { return []byte("access_token\x00" + m.appid) }

// takeLease makes this instance the one that refreshes, if no other holds the lease.
func (m *Manager) takeLease(ctx context.Context, row *ent.AccessToken, now time.Time) (bool, error) {
	until := now.Add(lease)
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

// refresh asks WeChat for the token and shares it. When WeChat hands back the token
// that was just rejected, it forces a new one.
func (m *Manager) refresh(ctx context.Context, current token, bad string) (token, error) {
	fresh, err := m.source.StableToken(ctx, false)
	if err == nil && bad != "" && fresh.Token == bad {
		fresh, err = m.source.StableToken(ctx, true)
	}
	now := m.clock()
	if err != nil {
		m.releaseLease(ctx)
		if bad == "" && current.usable(now) {
			// Keep using it, and do not try again for minRefreshGap: a failing WeChat
			// should not be asked on every call.
			m.log.WarnContext(ctx, "accesstoken: refresh failed; the current token still works", "appid", m.appid, "error", err)
			current.refreshedAt = now
			return current, nil
		}
		return token{}, err
	}
	t := token{value: fresh.Token, expiresAt: fresh.ExpiresAt.UTC().Truncate(time.Microsecond), refreshedAt: now}
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

func (m *Manager) releaseLease(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := m.db.AccessToken.Update().
		Where(accesstoken.ID(m.appid), accesstoken.LeaseHolder(m.holder)).
		ClearLeaseUntil().ClearLeaseHolder().AddVersion(1).Exec(ctx); err != nil {
		m.log.WarnContext(ctx, "accesstoken: releasing the refresh lease", "error", err)
	}
}
