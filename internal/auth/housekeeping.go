package auth

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/auditevent"
	"github.com/wxlogin/wxlogin/ent/logincode"
	"github.com/wxlogin/wxlogin/ent/predicate"
	"github.com/wxlogin/wxlogin/ent/session"
	"github.com/wxlogin/wxlogin/ent/weblogin"
)

// purgeBatch bounds one delete, so that housekeeping never holds locks for long.
const purgeBatch = 500

// Purged counts what one housekeeping round deleted.
type Purged struct {
	Sessions, Codes, AuditEvents, WebLogins int
}

// Purge deletes, in small batches, what has no more use: sessions that are revoked,
// past their lifetime or idle too long, code records past their window (and claims
// whose holder died), and audit rows past their retention. Several instances may run it
// at once: each batch deletes by id and re-checks the condition, so a row another
// instance deleted first is not counted, and a session used since it was found is kept.
func (s *Service) Purge(ctx context.Context) (Purged, error) {
	now := s.clock()
	var p Purged
	ended := []predicate.Session{ // each on an index of its own
		session.RevokedAtNotNil(),
		session.ExpiresAtLTE(now),
		session.And(session.Web(false), session.LastSeenAtLTE(now.Add(-s.policy.IdleTimeout))),
		session.And(session.Web(true), session.LastSeenAtLTE(now.Add(-s.policy.WebIdleTimeout))),
	}
	for _, cond := range ended {
		n, err := purge(ctx, s,
			func(tx *ent.Tx) ([]uuid.UUID, error) {
				return tx.Session.Query().Where(cond).Limit(purgeBatch).IDs(ctx)
			},
			func(tx *ent.Tx, ids []uuid.UUID) (int, error) {
				return tx.Session.Delete().Where(session.IDIn(ids...), cond).Exec(ctx)
			})
		p.Sessions += n
		if err != nil {
			return p, err
		}
	}
	spent := logincode.ExpiresAtLTE(now)
	var err error
	p.Codes, err = purge(ctx, s,
		func(tx *ent.Tx) ([]uuid.UUID, error) {
			return tx.LoginCode.Query().Where(spent).Limit(purgeBatch).IDs(ctx)
		},
		func(tx *ent.Tx, ids []uuid.UUID) (int, error) {
			return tx.LoginCode.Delete().Where(logincode.IDIn(ids...), spent).Exec(ctx)
		})
	if err != nil {
		return p, err
	}
	old := auditevent.AtLTE(now.Add(-s.policy.AuditRetention))
	p.AuditEvents, err = purge(ctx, s,
		func(tx *ent.Tx) ([]uuid.UUID, error) {
			return tx.AuditEvent.Query().Where(old).Limit(purgeBatch).IDs(ctx)
		},
		func(tx *ent.Tx, ids []uuid.UUID) (int, error) {
			return tx.AuditEvent.Delete().Where(auditevent.IDIn(ids...), old).Exec(ctx)
		})
	if err != nil {
		return p, err
	}
	// A web login ends at its expiry; its row stays a minute longer, for the browser's
	// last look to say "expired".
	gone := weblogin.ExpiresAtLTE(now.Add(-time.Minute))
	p.WebLogins, err = purge(ctx, s,
		func(tx *ent.Tx) ([]uuid.UUID, error) {
			return tx.WebLogin.Query().Where(gone).Limit(purgeBatch).IDs(ctx)
		},
		func(tx *ent.Tx, ids []uuid.UUID) (int, error) {
			return tx.WebLogin.Delete().Where(weblogin.IDIn(ids...), gone).Exec(ctx)
		})
	s.limiter.prune(now)
	s.webLimiter.Prune(now)
	s.webInstance.Prune(now)
	return p, err
}

// purge deletes batch after batch of the ids find returns, each batch in a short
// transaction of its own, until a batch comes back short.
func purge[ID any](ctx context.Context, s *Service, find func(*ent.Tx) ([]ID, error), del func(*ent.Tx, []ID) (int, error)) (int, error) {
	total := 0
	for {
		var found, deleted int
		err := s.db.WithTx(ctx, func(tx *ent.Tx) error {
			ids, err := find(tx)
			if err != nil || len(ids) == 0 {
				return err
			}
			found = len(ids)
			deleted, err = del(tx, ids)
			return err
		})
		if err != nil {
			return total, err
		}
		total += deleted
		if found < purgeBatch {
			return total, nil
		}
	}
}

// RunHousekeeping purges every interval (with jitter, so that instances started
// together spread out) until ctx ends, running the other packages' purges after its own.
func (s *Service) RunHousekeeping(ctx context.Context, interval time.Duration, others ...func(context.Context) (int, error)) {
	for {
		wait := interval/2 + rand.N(interval)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		p, err := s.Purge(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "auth: housekeeping", "error", err)
			}
			continue
		}
		for _, purge := range others {
			if n, err := purge(ctx); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "housekeeping", "error", err)
			} else if n > 0 {
				s.log.InfoContext(ctx, "housekeeping purged", "rows", n)
			}
		}
		if p != (Purged{}) {
			s.log.LogAttrs(ctx, slog.LevelInfo, "auth: housekeeping purged",
				slog.Int("sessions", p.Sessions), slog.Int("login_codes", p.Codes), slog.Int("audit_events", p.AuditEvents))
		}
	}
}
