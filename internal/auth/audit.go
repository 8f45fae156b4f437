package auth

import (
	"context"
	"errors"
	"log/slog"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/auditevent"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/ids"
	"github.com/wxlogin/wxlogin/internal/ratelimit"
)

// auditEntry is one change to who is logged in. It never holds a token or a code.
type auditEntry struct {
	event     auditevent.Event
	userID    *uuid.UUID
	sessionID *uuid.UUID
	client    Client
	code      string // a failed login's error code
	sessions  *int   // how many sessions a logout-all ended
	reason    string // a block's reason, or where a deletion came from
}

// auditor writes audit rows inside a transaction and logs them once it commits, so
// that the log never tells of a change that was rolled back.
type auditor struct {
	db      *database.DB
	tx      *ent.Tx
	now     time.Time
	pending []auditEntry
	// forgetUsers and forgetSessions are what this instance stops answering for from
	// its session cache once the transaction commits.
	forgetUsers    []uuid.UUID
	forgetSessions []uuid.UUID
}

// record writes e's row.
func (a *auditor) record(ctx context.Context, e auditEntry) error {
	if _, err := a.db.ExecBatch(ctx, a.tx, a.statement(e)); err != nil {
		return err
	}
	a.recorded(e)
	return nil
}

// statement is the insert of the entries' rows, one statement for a batch; recorded must
// follow, for each, once it ran.
func (a *auditor) statement(es ...auditEntry) database.Statement {
	ins := entsql.Dialect(a.db.Dialect).Insert(auditevent.Table).
		Columns(auditevent.FieldID, auditevent.FieldAt, auditevent.FieldEvent, auditevent.FieldUserID, auditevent.FieldSessionID,
			auditevent.FieldIP, auditevent.FieldUserAgent, auditevent.FieldErrorCode, auditevent.FieldSessions, auditevent.FieldReason)
	for _, e := range es {
		ins.Values(ids.New(), a.now, string(e.event), orNull(e.userID), orNull(e.sessionID),
			orNull(optional(e.client.IP)), orNull(optional(e.client.UserAgent)), orNull(optional(e.code)), orNull(e.sessions), orNull(optional(e.reason)))
	}
	q, args := ins.Query()
	return database.Statement{Query: q, Args: args}
}

// recorded notes e, written, for the log and the session cache after the commit.
func (a *auditor) recorded(e auditEntry) {
	a.pending = append(a.pending, e)
	if e.userID != nil { // every event with a user changes it or its sessions
		a.forgetUsers = append(a.forgetUsers, *e.userID)
	}
	switch e.event {
	case auditevent.EventLogout, auditevent.EventSessionRevoked, auditevent.EventSessionEvicted:
		if e.sessionID != nil {
			a.forgetSessions = append(a.forgetSessions, *e.sessionID)
		}
	}
}

// orNull is *p, or NULL for nil, as a statement's argument.
func orNull[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// inTx runs fn in a transaction with an auditor: the change and its audit rows commit
// or roll back together, and the audit lines are logged only after a commit.
func (s *Service) inTx(ctx context.Context, fn func(tx *ent.Tx, audit *auditor) error) error {
	var a *auditor
	err := s.db.WithTx(ctx, func(tx *ent.Tx) error {
		a = &auditor{db: s.db, tx: tx, now: s.clock()} // afresh on every try of a retried transaction
		return fn(tx, a)
	})
	if err == nil {
		s.sessions.forget(s.now(), a.forgetUsers, a.forgetSessions)
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
		attrs = append(attrs, slog.String("error_code", e.code))
	}
	if e.sessions != nil {
		attrs = append(attrs, slog.Int("sessions", *e.sessions))
	}
	if e.reason != "" {
		attrs = append(attrs, slog.String("reason", e.reason))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
}

// LoginFailed records a failed login with the error code its client was given. A
// failed login changes nothing, so it is written on its own, and finished even if the
// client has gone away. A flood refused by the rate limit is recorded once per address
// each time its allowance runs dry, not once per request: recording every refusal would
// turn the flood into as many database writes. When even the write fails (the database
// is down), the failure is logged and the client still gets its answer.
//
// began is when the login began: the write gives up in time for the answer to leave
// within the contract's 10 s (a login that met a stalled database has little left).
func (s *Service) LoginFailed(ctx context.Context, client Client, code string, cause error, began time.Time) {
	if limited := (*ratelimit.Error)(nil); errors.As(cause, &limited) && !limited.First {
		return
	}
	wait := min(2*time.Second, time.Until(began.Add(LoginAnswerBound)))
	if wait <= 0 {
		s.log.ErrorContext(ctx, "auth: a failed login not recorded: no time left to", "error_code", code)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait)
	defer cancel()
	err := s.inTx(ctx, func(_ *ent.Tx, audit *auditor) error {
		return audit.record(ctx, auditEntry{event: auditevent.EventLoginFailed, client: client, code: code})
	})
	if err != nil {
		s.log.ErrorContext(ctx, "auth: recording a failed login", "error_code", code, "error", err)
	}
}
