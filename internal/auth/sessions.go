package auth

import (
	"context"
	"fmt"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/session"
)

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
