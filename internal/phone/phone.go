// Package phone binds a user's phone number from the code of the mini-program's
// getPhoneNumber button. WeChat bills every exchange, so a code is exchanged at most
// once: a claim row keyed by a hash of the code makes retries and races, on any
// instance, wait for the one exchange and share its outcome; and each user's exchanges
// are rate-limited. The number is stored sealed, in E.164 form (+8613800000000), and
// shown only to its owner.
package phone

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/ent/phonecode"
	"github.com/wxlogin/wxlogin/ent/user"
	"github.com/wxlogin/wxlogin/internal/claim"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/input"
	"github.com/wxlogin/wxlogin/internal/ratelimit"
	"github.com/wxlogin/wxlogin/internal/seal"
	"github.com/wxlogin/wxlogin/internal/wechat"
	"github.com/wxlogin/wxlogin/internal/wxapp"
)

const (
	// timeout bounds one binding, waiting included.
	timeout = 9500 * time.Millisecond
	// window: a phone code lives 5 minutes.
	window  = 5 * time.Minute
	maxCode = 128
	// storeTimeout bounds storing a number WeChat has already given (and billed).
	storeTimeout = 5 * time.Second
	// migrateBatch is how many users one query of MigrateNumbers reads.
	migrateBatch = 500
)

// Each exchange reaches WeChat, which bills a success: a user gets CodeBurst exchanges
// at once, then CodesPerHour, on each instance. A code sent again is answered from its
// claim and spends nothing.
const (
	CodeBurst    = 5
	CodesPerHour = 10
)

// ErrTooManyCodes refuses an exchange over the user's limit; it comes with the
// *ratelimit.Error that says when to retry.
var ErrTooManyCodes = errors.New("phone: too many phone codes for this user")

// ErrNotYours means the code was already used to bind another user's number.
var ErrNotYours = fmt.Errorf("phone: the code was used by another user: %w", wechat.ErrInvalidCode)

// Options are the Service's dependencies.
type Options struct {
	DB      *database.DB
	Apps    []wxapp.App
	Keyring *seal.Keyring
	Now     func() time.Time
	Logger  *slog.Logger
}

// Service binds phone numbers.
type Service struct {
	db      *database.DB
	apps    wxapp.Set
	keyring *seal.Keyring
	limit   *ratelimit.Limiter // exchanges per user
	claims  claim.Machine[uuid.UUID]
	now     func() time.Time
	log     *slog.Logger
	batch   int // users per query of MigrateNumbers
}

// New builds a Service.
func New(o Options) *Service {
	s := &Service{
		db: o.DB, apps: wxapp.NewSet(o.Apps), keyring: o.Keyring, now: o.Now, log: o.Logger,
		limit: ratelimit.New(CodesPerHour, time.Hour, CodeBurst), batch: migrateBatch,
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.claims = claim.Machine[uuid.UUID]{Window: window, Refusals: refusals, Unknown: wechat.ErrUnexpected, Now: s.clock}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// refusals are WeChat's refusals of a code that asking again would not change, by the
// name a failed claim keeps.
var refusals = map[string]error{
	"invalid_code": wechat.ErrInvalidCode,
	"rate_limited": wechat.ErrRateLimited,
	"foreign_code": wechat.ErrForeignCode,
}

// Bind exchanges the code, from the mini-program appid, for the user's phone number
// and stores it. The same code sent again by the same user succeeds again without a
// second exchange.
func (s *Service) Bind(ctx context.Context, userID uuid.UUID, appid, openid, code string) error {
	if err := validate(code); err != nil {
		return err
	}
	app, err := s.apps.Get(appid)
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte("wxlogin phone code\x00" + code))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	store := phoneCode{s.db, sum[:], userID}
	id, done, err := s.claims.Take(ctx, store)
	switch {
	case err != nil:
		return err
	case done != nil && done.Data != userID:
		return ErrNotYours
	case done != nil:
		return nil
	}
	if err := s.exchange(ctx, app, id, userID, openid, code); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if rerr := s.claims.Release(cctx, store, id, err); rerr != nil {
			s.log.ErrorContext(ctx, "phone: releasing a failed code claim", "error", rerr)
		}
		return err
	}
	return nil
}

// phoneCode is one phone code's claim (claim.Store): its row in phone_codes, keyed by
// the code's hash, naming the user it binds a number for (Data).
type phoneCode struct {
	db     *database.DB
	hash   []byte
	userID uuid.UUID
}

func (c phoneCode) Insert(ctx context.Context, lease, expires time.Time) (uuid.UUID, error) {
	rec, err := c.db.PhoneCode.Create().
		SetCodeHash(c.hash).SetUserID(c.userID).SetState(phonecode.StatePending).
		SetLeaseUntil(lease).SetExpiresAt(expires).
		Save(ctx)
	switch {
	case database.IsUniqueViolation(err):
		return uuid.Nil, nil
	case err != nil:
		return uuid.Nil, err
	}
	return rec.ID, nil
}

func (c phoneCode) Find(ctx context.Context) (claim.Row[uuid.UUID], bool, error) {
	rec, err := c.db.PhoneCode.Query().Where(phonecode.CodeHash(c.hash)).Only(ctx)
	switch {
	case ent.IsNotFound(err):
		return claim.Row[uuid.UUID]{}, false, nil
	case err != nil:
		return claim.Row[uuid.UUID]{}, false, err
	}
	row := claim.Row[uuid.UUID]{ID: rec.ID, Failure: deref(rec.Failure), LeaseUntil: rec.LeaseUntil, ExpiresAt: rec.ExpiresAt, Data: rec.UserID}
	switch rec.State {
	case phonecode.StateDone:
		row.State = claim.Done
	case phonecode.StateFailed:
		row.State = claim.Failed
	}
	return row, true, nil
}

func (c phoneCode) Delete(ctx context.Context, id uuid.UUID, state claim.State) error {
	_, err := c.db.PhoneCode.Delete().Where(phonecode.ID(id), phonecode.StateEQ(phoneCodeState(state))).Exec(ctx)
	return err
}

func (c phoneCode) Fail(ctx context.Context, id uuid.UUID, failure string, expires time.Time) error {
	return c.db.PhoneCode.Update().Where(phonecode.ID(id), phonecode.StateEQ(phonecode.StatePending)).
		SetState(phonecode.StateFailed).SetFailure(failure).SetExpiresAt(expires).Exec(ctx)
}

func phoneCodeState(s claim.State) phonecode.State {
	switch s {
	case claim.Done:
		return phonecode.StateDone
	case claim.Failed:
		return phonecode.StateFailed
	}
	return phonecode.StatePending
}

// exchange asks WeChat for the number under a claim, and stores it with the claim
// marked done in one transaction.
func (s *Service) exchange(ctx context.Context, app wxapp.App, claimID uuid.UUID, userID uuid.UUID, openid, code string) error {
	if refused := s.limit.Take(userID.String(), s.now()); refused != nil {
		return fmt.Errorf("%w: %w", ErrTooManyCodes, refused)
	}
	// A full budget of its own, however long this request waited for the claim: an
	// exchange cut short may already be billed.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	var info wechat.PhoneInfo
	err := app.Tokens.Do(ectx, func(token string) (err error) {
		info, err = app.Client.GetPhoneNumber(ectx, token, code, openid)
		return err
	})
	if err == nil && info.WatermarkAppID != app.Client.AppID() {
		err = fmt.Errorf("phone: WeChat's answer is for another app: %w", wechat.ErrUnexpected)
	}
	var number string
	if err == nil {
		given := info.PhoneNumber
		if given == "" {
			given = info.PurePhoneNumber
		}
		var ok bool
		if number, ok = e164(given, info.CountryCode); !ok {
			err = fmt.Errorf("phone: WeChat's answer has no number in a form known here (country code %q): %w", info.CountryCode, wechat.ErrUnexpected)
		}
	}
	if err == nil {
		// WeChat has billed this exchange: storing its answer must not fail for want of
		// the request's remaining time.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		defer cancel()
		err = s.db.WithTx(sctx, func(tx *ent.Tx) error {
			// The claim names the user: a merge may have moved it since it was made.
			rec, err := tx.PhoneCode.Get(sctx, claimID)
			if err != nil {
				return err
			}
			if err := tx.User.UpdateOneID(rec.UserID).SetPhoneNumber(s.keyring.Seal([]byte(number), Binding(rec.UserID))).Exec(sctx); err != nil {
				return err
			}
			n, err := tx.PhoneCode.Update().Where(phonecode.ID(claimID), phonecode.StateEQ(phonecode.StatePending)).SetState(phonecode.StateDone).Save(sctx)
			if err == nil && n != 1 {
				err = errors.New("phone: the claim on this code was lost")
			}
			return err
		})
		if err == nil {
			s.log.InfoContext(ctx, "phone: number bound", "user_id", userID.String())
			return nil
		}
		s.log.ErrorContext(ctx, "phone: WeChat gave the number, but storing it failed", "error", err)
	}
	return err
}

// NumberOf returns the user's phone number, or nil when none is bound.
func (s *Service) NumberOf(ctx context.Context, userID uuid.UUID) (*string, error) {
	u, err := s.db.User.Get(ctx, userID)
	if err != nil {
		return nil, err
	}
	var sealed []byte
	if Has(u) {
		sealed = *u.PhoneNumber
	}
	return s.Open(userID, sealed)
}

// Open returns the phone number sealed in a user's row, in E.164 form, or nil when
// none is (sealed is empty). A number stored in WeChat's own form, before
// MigrateNumbers rewrote it, is shown in E.164 all the same.
func (s *Service) Open(userID uuid.UUID, sealed []byte) (*string, error) {
	if len(sealed) == 0 {
		return nil, nil
	}
	plain, err := s.keyring.Open(sealed, Binding(userID))
	if err != nil {
		return nil, fmt.Errorf("phone: opening the stored number: %w", err)
	}
	number, ok := e164(string(plain), "")
	if !ok {
		number = string(plain)
	}
	return &number, nil
}

// MigrateNumbers rewrites the numbers stored in WeChat's own form (a mainland number
// bare, as wxlogin stored it before it kept E.164) in E.164, and returns how many it
// rewrote. It is idempotent, and safe while other instances bind numbers or migrate
// too: a row is rewritten only if it still holds the number that was read. Numbers
// sealed under a key no longer configured are left as they are, and logged.
func (s *Service) MigrateNumbers(ctx context.Context) (int, error) {
	rewritten := 0
	after := uuid.Nil
	for {
		rows, err := s.db.User.Query().
			Where(user.IDGT(after), user.PhoneNumberNotNil()).
			Order(user.ByID()).Limit(s.batch).
			Select(user.FieldID, user.FieldPhoneNumber).
			All(ctx)
		if err != nil {
			return rewritten, err
		}
		for _, u := range rows {
			after = u.ID
			if !Has(u) {
				continue
			}
			n, err := s.rewrite(ctx, u.ID, *u.PhoneNumber)
			if err != nil {
				return rewritten, err
			}
			rewritten += n
		}
		if len(rows) < s.batch {
			return rewritten, nil
		}
	}
}

// rewrite reseals the number sealed in userID's row in E.164 if it is in another form,
// provided the row still holds sealed.
func (s *Service) rewrite(ctx context.Context, userID uuid.UUID, sealed []byte) (int, error) {
	plain, err := s.keyring.Open(sealed, Binding(userID))
	if err != nil {
		s.log.WarnContext(ctx, "phone: a stored number cannot be opened with the configured keys; left as it is", "user_id", userID.String())
		return 0, nil
	}
	number, ok := e164(string(plain), "")
	if !ok {
		s.log.WarnContext(ctx, "phone: a stored number is in no form known here; left as it is", "user_id", userID.String())
		return 0, nil
	}
	if number == string(plain) {
		return 0, nil
	}
	return s.db.User.Update().
		Where(user.ID(userID), user.PhoneNumberEQ(sealed)).
		SetPhoneNumber(s.keyring.Seal([]byte(number), Binding(userID))).
		Save(ctx)
}

// PurgeExpired deletes code records past their window, and forgets the rate limit's
// refilled buckets.
func (s *Service) PurgeExpired(ctx context.Context) (int, error) {
	s.limit.Prune(s.now())
	return s.db.PhoneCode.Delete().Where(phonecode.ExpiresAtLTE(s.clock())).Exec(ctx)
}

// Has reports whether the user has a number bound. (ent reads a NULL bytes column as
// a pointer to an empty slice on some paths: presence is a non-empty value.)
func Has(u *ent.User) bool { return u.PhoneNumber != nil && len(*u.PhoneNumber) > 0 }

// Binding is the additional data a number is sealed with: its user.
func Binding(userID uuid.UUID) []byte { return []byte("phone\x00" + userID.String()) }

func validate(code string) error {
	if code == "" || len(code) > maxCode {
		return input.Errorf("code must be the 1 to 128 character code from the getPhoneNumber button's event.")
	}
	for i := 0; i < len(code); i++ {
		if code[i] < 0x21 || code[i] > 0x7e {
			return input.Errorf("code must contain only printable ASCII characters: pass the getPhoneNumber code unchanged.")
		}
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
