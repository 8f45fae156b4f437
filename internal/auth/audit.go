package auth

import (
	"context"
	"log/slog"

	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/auditevent"
)

// auditEntry is one change to who is logged in. It never holds a token or a code.
type auditEntry struct {
	event     auditevent.Event
	userID    *uuid.UUID
	sessionID *uuid.UUID
	client    Client
	code      string // a failed login's error code
	sessions  *int   // how many sessions a logout-all ended
}

// auditor writes audit rows inside a transaction and logs them once it commits, so
// that the log never tells of a change that was rolled back.
type auditor struct {
	tx      *ent.Tx
	pending []auditEntry
}

func (a *auditor) record(ctx context.Context, e auditEntry) error {
	err := a.tx.AuditEvent.Create().
		SetEvent(e.event).
		SetNillableUserID(e.userID).
		SetNillableSessionID(e.sessionID).
		SetNillableIP(optional(clip(e.client.IP, 64))).
		SetNillableUserAgent(optional(clip(e.client.UserAgent, 512))).
		SetNillableCode(optional(e.code)).
		SetNillableSessions(e.sessions).
		Exec(ctx)
	if err == nil {
		a.pending = append(a.pending, e)
	}
	return err
}

// inTx runs fn in a transaction with an auditor: the change and its audit rows commit
// or roll back together, and the audit lines are logged only after a commit.
func (s *Service) inTx(ctx context.Context, fn func(tx *ent.Tx, audit *auditor) error) error {
	var a *auditor
	err := s.db.WithTx(ctx, func(tx *ent.Tx) error {
		a = &auditor{tx: tx} // afresh on every try of a retried transaction
		return fn(tx, a)
	})
	if err == nil {
		for _, e := range a.pending {
			s.logAudit(ctx, e)
		}
	}
	return err
}

func (s *Service) logAudit(ctx context.Context, e auditEntry) {
	attrs := []slog.Attr{slog.String("event", string(e.event)), slog.String("ip", e.client.IP), slog.String("user_agent", e.client.UserAgent)}
	if e.userID != nil {
		attrs = append(attrs, slog.String("user_id", e.userID.String()))
	}
	if e.sessionID != nil {
		attrs = append(attrs, slog.String("session_id", e.sessionID.String()))
	}
	if e.code != "" {
		attrs = append(attrs, slog.String("code", e.code))
	}
	if e.sessions != nil {
		attrs = append(attrs, slog.Int("sessions", *e.sessions))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
}

// LoginFailed records a failed login with the error code its client was given. A
// failed login changes nothing, so it is written on its own; when even that fails
// (the database is down), the failure is logged and the client still gets its answer.
func (s *Service) LoginFailed(ctx context.Context, client Client, code string) {
	err := s.inTx(ctx, func(_ *ent.Tx, audit *auditor) error {
		return audit.record(ctx, auditEntry{event: auditevent.EventLoginFailed, client: client, code: code})
	})
	if err != nil {
		s.log.ErrorContext(ctx, "auth: recording a failed login", "code", code, "error", err)
	}
}
