package auth

import (
	"context"
	"fmt"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/auditevent"
	"github.com/wxlogin/wxlogin/ent/predicate"
	"github.com/wxlogin/wxlogin/ent/session"
	"github.com/wxlogin/wxlogin/internal/input"
)

// Authenticate turns a bearer token into its live session: not revoked, within its
// absolute lifetime, and used within the idle timeout. Using it moves lastSeenAt on,
// at most once a minute, so that a busy client does not turn every read into a write.
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
	if sess.RevokedAt != nil || !now.Before(s.expiresAt(sess)) {
		return nil, errInvalidToken
	}
	if now.Sub(sess.LastSeenAt) >= lastSeenEvery {
		// Conditional, so that instances serving the same session at once write once.
		// Best effort: a failed write must not fail the request.
		n, err := s.db.Session.Update().
			Where(session.ID(sess.ID), session.LastSeenAtLTE(now.Add(-lastSeenEvery))).
			SetLastSeenAt(now).
			Save(ctx)
		switch {
		case err != nil:
			s.log.WarnContext(ctx, "auth: recording a session's last-seen time", "error", err)
		case n == 1:
			sess.LastSeenAt = now
		}
	}
	return &Current{Session: sess, Account: Account{User: sess.Edges.User, Identity: sess.Edges.Identity}}, nil
}

// liveSessionsOf selects a user's sessions that still work at now.
func (s *Service) liveSessionsOf(userID uuid.UUID, now time.Time) []predicate.Session {
	return []predicate.Session{
		session.UserID(userID),
		session.RevokedAtIsNil(),
		session.ExpiresAtGT(now),
		session.LastSeenAtGT(now.Add(-s.policy.IdleTimeout)),
	}
}

// SessionView is a live session as its owner sees it.
type SessionView struct {
	Session   *ent.Session
	ExpiresAt time.Time
	Current   bool
}

// Sessions lists the current user's live sessions, newest first.
func (s *Service) Sessions(ctx context.Context, cur *Current) ([]SessionView, error) {
	list, err := s.db.Session.Query().
		Where(s.liveSessionsOf(cur.Account.User.ID, s.clock())...).
		Order(session.ByCreatedAt(entsql.OrderDesc()), session.ByID(entsql.OrderDesc())).
		Limit(1000).
		All(ctx)
	if err != nil {
		return nil, err
	}
	views := make([]SessionView, len(list))
	for i, sess := range list {
		views[i] = SessionView{Session: sess, ExpiresAt: s.expiresAt(sess), Current: sess.ID == cur.Session.ID}
	}
	return views, nil
}

// Logout revokes the current session at once; its token stops working everywhere.
func (s *Service) Logout(ctx context.Context, cur *Current) error {
	_, err := s.revoke(ctx, cur, cur.Session.ID, auditevent.EventLogout)
	return err
}

// RevokeSession ends one of the current user's live sessions and reports whether it
// did. For a session of another user the answer is the same as for an unknown id:
// false, and nothing changes.
func (s *Service) RevokeSession(ctx context.Context, cur *Current, id string) (bool, error) {
	sid, err := uuid.Parse(id)
	if err != nil {
		return false, input.Errorf("id is not a session id: pass an id from the sessions query.")
	}
	return s.revoke(ctx, cur, sid, auditevent.EventSessionRevoked)
}

func (s *Service) revoke(ctx context.Context, cur *Current, sid uuid.UUID, event auditevent.Event) (bool, error) {
	var ended bool
	err := s.inTx(ctx, func(tx *ent.Tx, audit *auditor) error {
		now := s.clock()
		userID := cur.Account.User.ID
		n, err := tx.Session.Update().
			Where(append(s.liveSessionsOf(userID, now), session.ID(sid))...).
			SetRevokedAt(now).
			Save(ctx)
		if err != nil || n == 0 {
			return err
		}
		ended = true
		return audit.record(ctx, auditEntry{event: event, userID: &userID, sessionID: &sid, client: ClientFrom(ctx)})
	})
	return ended, err
}

// LogoutAll ends every live session of the current user, or all but the current one,
// and returns how many it ended.
func (s *Service) LogoutAll(ctx context.Context, cur *Current, keepCurrent bool) (int, error) {
	var ended int
	err := s.inTx(ctx, func(tx *ent.Tx, audit *auditor) error {
		now := s.clock()
		userID := cur.Account.User.ID
		where := s.liveSessionsOf(userID, now)
		if keepCurrent {
			where = append(where, session.IDNEQ(cur.Session.ID))
		}
		n, err := tx.Session.Update().Where(where...).SetRevokedAt(now).Save(ctx)
		if err != nil {
			return err
		}
		ended = n
		return audit.record(ctx, auditEntry{event: auditevent.EventLogoutAll, userID: &userID, sessionID: &cur.Session.ID, client: ClientFrom(ctx), sessions: &n})
	})
	return ended, err
}
