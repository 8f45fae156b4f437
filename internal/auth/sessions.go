package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/auditevent"
	"github.com/wxlogin/wxlogin/ent/identity"
	"github.com/wxlogin/wxlogin/ent/predicate"
	"github.com/wxlogin/wxlogin/ent/session"
	"github.com/wxlogin/wxlogin/ent/user"
	"github.com/wxlogin/wxlogin/internal/input"
)

// Authenticate turns a bearer token into its live session: not revoked, within its
// absolute lifetime, and used within the idle timeout. Using it moves lastSeenAt on,
// at most once a minute, so that a busy client does not turn every read into a write.
//
// A session found is remembered for a few seconds (see sessionCache), so that most
// requests of a busy client cost no query; the one that does is a single indexed read.
func (s *Service) Authenticate(ctx context.Context, token string) (*Current, error) {
	return s.authenticate(ctx, token, false)
}

// authenticate is Authenticate; fresh skips the cache (the lookup is still stored).
func (s *Service) authenticate(ctx context.Context, token string, fresh bool) (*Current, error) {
	if !wellFormed(token) {
		return nil, errMalformedToken
	}
	key := [32]byte(hashToken(token))
	started := s.now()
	var cur *Current
	if !fresh {
		cur = s.sessions.get(key, started)
	}
	if cur == nil {
		var err error
		if cur, err = s.lookup(ctx, key[:]); err != nil {
			return nil, err
		}
		if cur.Session.RevokedAt == nil {
			s.sessions.put(key, cur, started, s.now())
		}
	}
	now := s.clock()
	sess := cur.Session
	if sess.RevokedAt != nil || !now.Before(s.SessionEnds(sess)) || cur.Account.User.BlockedAt != nil {
		return nil, errInvalidToken
	}
	if now.Sub(sess.LastSeenAt) >= lastSeenEvery {
		// Conditional, so that instances serving the same session at once write once.
		// Best effort: a failed write must not fail the request.
		_, err := s.db.Session.Update().
			Where(session.ID(sess.ID), session.LastSeenAtLTE(now.Add(-lastSeenEvery))).
			SetLastSeenAt(now).
			Save(ctx)
		if err != nil {
			s.log.WarnContext(ctx, "auth: recording a session's last-seen time", "error", err)
		} else {
			// This instance or another moved it to at least now; the next lookup reads it.
			seen := *sess
			seen.LastSeenAt = now
			cur = &Current{Session: &seen, Account: cur.Account}
			s.sessions.drop(key)
		}
	}
	return cur, nil
}

// lookupQuery reads a session with its user and identity, by the session's token
// hash, in one indexed query.
func lookupQuery(dia string) string {
	st, ut, it := entsql.Table(session.Table).As("s"), entsql.Table(user.Table).As("u"), entsql.Table(identity.Table).As("i")
	q, _ := entsql.Dialect(dia).Select(slices.Concat(sessionColumns(st), userColumns(ut), identityColumns(it))...).
		From(st).
		Join(ut).On(st.C(session.FieldUserID), ut.C(user.FieldID)).
		Join(it).On(st.C(session.FieldIdentityID), it.C(identity.FieldID)).
		Where(entsql.EQ(st.C(session.FieldTokenHash), []byte(nil))).
		Query()
	return q
}

func (s *Service) lookup(ctx context.Context, tokenHash []byte) (*Current, error) {
	var (
		sess  ent.Session
		user  ent.User
		ident ent.Identity
	)
	err := s.db.SQL.QueryRowContext(ctx, s.lookupQuery, tokenHash).Scan(slices.Concat(scanSession(&sess), scanUser(&user), scanIdentity(&ident))...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errInvalidToken
	}
	if err != nil {
		return nil, fmt.Errorf("auth: looking up a session: %w", err)
	}
	sess.TokenHash = tokenHash
	sess.Edges.User, sess.Edges.Identity = &user, &ident
	return &Current{Session: &sess, Account: Account{User: &user, Identity: &ident}}, nil
}

// Identity reads the identity the request's session logged in with as it is now: its
// session_key changes with every login, on any instance.
func (s *Service) Identity(ctx context.Context, cur *Current) (*ent.Identity, error) {
	return s.db.Identity.Get(ctx, cur.Account.Identity.ID)
}

// liveSessionsOf selects a user's sessions that still work at now.
func (s *Service) liveSessionsOf(userID uuid.UUID, now time.Time) []predicate.Session {
	return s.liveSessions(now, session.UserID(userID))
}

// liveSessions selects the sessions of which selects that still work at now.
func (s *Service) liveSessions(now time.Time, which predicate.Session) []predicate.Session {
	return []predicate.Session{
		which,
		session.RevokedAtIsNil(),
		session.ExpiresAtGT(now),
		session.Or(
			session.And(session.Web(false), session.LastSeenAtGT(now.Add(-s.policy.IdleTimeout))),
			session.And(session.Web(true), session.LastSeenAtGT(now.Add(-s.policy.WebIdleTimeout))),
		),
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
		views[i] = SessionView{Session: sess, ExpiresAt: s.SessionEnds(sess), Current: sess.ID == cur.Session.ID}
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
		where := append(s.liveSessionsOf(userID, now), session.ID(sid))
		if sid == cur.Session.ID {
			// The request's own session is the user's by definition, even if a merge
			// on another instance moved it moments ago.
			where = []predicate.Session{session.ID(sid), session.RevokedAtIsNil()}
		}
		if err := s.lockUserFirst(ctx, tx, userID); err != nil {
			return err
		}
		n, err := tx.Session.Update().Where(where...).SetRevokedAt(now).Save(ctx)
		if err != nil || n == 0 {
			return err
		}
		ended = true
		return audit.record(ctx, auditEntry{event: event, userID: &userID, sessionID: &sid, client: ClientFrom(ctx)})
	})
	if err == nil && !ended { // already ended elsewhere: stop answering for it here too
		s.sessions.forget(s.now(), []uuid.UUID{cur.Account.User.ID}, []uuid.UUID{sid})
	}
	if err == nil {
		endInRequest(ctx, sid) // the fields after this one run without it, if it was the request's own
	}
	return ended, err
}

// lockUserFirst locks the user's row, on MySQL, before a change to the user's sessions.
// A login writes its user's row before it reads the user's sessions with a lock (the
// eviction): ending a session without it locked the session's primary key before its
// (user_id, revoked_at, expires_at) entry, the eviction the other way round, and the
// two deadlocked, some 400 times a minute under the soak's load. Queued on the user's
// row, they cannot.
func (s *Service) lockUserFirst(ctx context.Context, tx *ent.Tx, userID uuid.UUID) error {
	if s.db.Dialect != dialect.MySQL {
		return nil // SQLite has one writer at a time
	}
	_, err := tx.User.Query().Where(user.ID(userID)).ForUpdate().IDs(ctx)
	return err
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
		if err := s.lockUserFirst(ctx, tx, userID); err != nil {
			return err
		}
		// The ids first (locked on MySQL), so that this instance forgets each of them.
		q := tx.Session.Query().Where(where...)
		if s.db.Dialect == dialect.MySQL {
			q = q.ForUpdate()
		}
		ids, err := q.IDs(ctx)
		if err != nil {
			return err
		}
		n := 0
		if len(ids) > 0 {
			if n, err = tx.Session.Update().Where(session.IDIn(ids...), session.RevokedAtIsNil()).SetRevokedAt(now).Save(ctx); err != nil {
				return err
			}
		}
		ended = n
		audit.forgetSessions = append(audit.forgetSessions, ids...)
		return audit.record(ctx, auditEntry{event: auditevent.EventLogoutAll, userID: &userID, sessionID: &cur.Session.ID, client: ClientFrom(ctx), sessions: &n})
	})
	if err == nil && !keepCurrent {
		endInRequest(ctx, cur.Session.ID) // the fields after this one run without it
	}
	return ended, err
}
