// Package claim makes a piece of work that must happen once happen once, across
// retries, races and instances: a request claims it with a row in the database, does
// it, and records how it went; the others find the row and wait for it, or take what
// it says. It is how a wx.login code and a phone code are each exchanged with WeChat
// once (WeChat spends the code, and bills a phone number). Its Lease and Poll are the
// ones every claim of wxlogin's uses, the access token's refresh included.
package claim

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

const (
	// Lease bounds how long a pending claim holds off the others, so that an instance
	// that crashed holding it does not hold it for longer than one exchange can take
	// (a login answers within 10 s).
	Lease = 15 * time.Second
	// Poll is how often a request waiting on another's claim looks again.
	Poll = 50 * time.Millisecond
	// FailedTTL is how long a final refusal is kept, so that the requests already
	// waiting on the claim get the same answer without asking again.
	FailedTTL = 10 * time.Second
)

// State is where a claim is: pending while its holder works, done once the work's
// outcome is recorded, failed when the work was refused for good.
type State int

const (
	Pending State = iota
	Done
	Failed
)

// Row is a claim as it stands, with what a done claim established (Data).
type Row[T any] struct {
	ID         uuid.UUID
	State      State
	Failure    string // a failed claim's refusal, by name
	LeaseUntil time.Time
	ExpiresAt  time.Time
	Data       T
}

// Store is one key's claim in its table (a code's hash in login_codes or
// phone_codes).
type Store[T any] interface {
	// Insert makes a pending claim held until lease, living until expires, and returns
	// its id; uuid.Nil when the key is claimed already.
	Insert(ctx context.Context, lease, expires time.Time) (uuid.UUID, error)
	// Find reads the key's claim; found is false when there is none.
	Find(ctx context.Context) (row Row[T], found bool, err error)
	// Delete removes claim id, if it is still in state.
	Delete(ctx context.Context, id uuid.UUID, state State) error
	// Fail turns pending claim id into the refusal named failure, kept until expires.
	Fail(ctx context.Context, id uuid.UUID, failure string, expires time.Time) error
}

// ErrBusy means another request still holds the claim, and the caller's time ran out
// waiting for it.
var ErrBusy = errors.New("claim: another request is still doing this")

// Machine runs the claims of one kind of work.
type Machine[T any] struct {
	// Window is how long a claim lives: no longer than the code it is for.
	Window time.Duration
	// Refusals are the final refusals a failed claim keeps, by name; a refusal not
	// among them is kept as nothing (the claim is removed, and a retry tries again).
	Refusals map[string]error
	// Unknown is the refusal of a failed claim whose name is not in Refusals (written
	// by another version).
	Unknown error
	// Now is the clock, as the database stores times (UTC, microseconds).
	Now func() time.Time
}

// Take claims the work, or finds how it went. It returns the claim's id when this
// request holds it and must do the work, then Record or Release it; or the row of a
// claim done, whose Data says what the work established; or the refusal a failed
// claim keeps, or ErrBusy when ctx ends while another holds it. A claim past its
// window, or pending past its lease (its holder died), is cleared and taken afresh.
func (m Machine[T]) Take(ctx context.Context, s Store[T]) (claim uuid.UUID, done *Row[T], err error) {
	for {
		now := m.Now()
		id, err := s.Insert(ctx, now.Add(Lease), now.Add(m.Window))
		switch {
		case err != nil:
			return uuid.Nil, nil, busyIfLate(ctx, err)
		case id != uuid.Nil:
			return id, nil, nil
		}
		for {
			row, found, err := s.Find(ctx)
			now := m.Now()
			switch {
			case err != nil:
				return uuid.Nil, nil, busyIfLate(ctx, err)
			case !found:
				// Gone meanwhile: claim it again.
			case !now.Before(row.ExpiresAt) || (row.State == Pending && !now.Before(row.LeaseUntil)):
				if err := s.Delete(ctx, row.ID, row.State); err != nil {
					return uuid.Nil, nil, busyIfLate(ctx, err)
				}
			case row.State == Done:
				return uuid.Nil, &row, nil
			case row.State == Failed:
				refusal := m.Refusals[row.Failure]
				if refusal == nil {
					refusal = m.Unknown
				}
				return uuid.Nil, nil, fmt.Errorf("claim: refused moments ago: %w", refusal)
			default: // pending: wait for its holder
				select {
				case <-ctx.Done():
					return uuid.Nil, nil, ErrBusy
				case <-time.After(Poll):
				}
				continue
			}
			break
		}
	}
}

// Release ends a claim whose work failed: a final refusal (one of Refusals) is kept
// for FailedTTL, so that the requests waiting on it get the same answer; any other
// failure removes the claim, so that a retry tries afresh.
func (m Machine[T]) Release(ctx context.Context, s Store[T], claim uuid.UUID, cause error) error {
	for name, refusal := range m.Refusals {
		if errors.Is(cause, refusal) {
			return s.Fail(ctx, claim, name, m.Now().Add(FailedTTL))
		}
	}
	return s.Delete(ctx, claim, Pending)
}

// busyIfLate reports a failure that came from running out of time as the claim being
// busy, not as the database's failure.
func busyIfLate(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ErrBusy
	}
	return err
}
