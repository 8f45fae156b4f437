package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wxlogin/wxlogin/internal/auth"
	"github.com/wxlogin/wxlogin/internal/claim"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/input"
	"github.com/wxlogin/wxlogin/internal/lograte"
	"github.com/wxlogin/wxlogin/internal/opendata"
	"github.com/wxlogin/wxlogin/internal/persisted"
	"github.com/wxlogin/wxlogin/internal/phone"
	"github.com/wxlogin/wxlogin/internal/ratelimit"
	"github.com/wxlogin/wxlogin/internal/wechat"
)

// The error codes of the contract: every GraphQL error carries one in extensions.code.
const (
	CodeBadUserInput      = "BAD_USER_INPUT"
	CodeInvalidCode       = "INVALID_CODE"
	CodeUnauthenticated   = "UNAUTHENTICATED"
	CodeForbidden         = "FORBIDDEN"
	CodeRateLimited       = "RATE_LIMITED"
	CodeWeChatUnavailable = "WECHAT_UNAVAILABLE"
	CodeUnavailable       = "UNAVAILABLE"
	CodeInternal          = "INTERNAL"
	CodeSessionKeyStale   = "SESSION_KEY_STALE"
	// The persisted-query protocol's answers: send the document with its hash; stop
	// sending hashes; only the allow-list's documents run here.
	CodePersistedQueryNotFound     = "PERSISTED_QUERY_NOT_FOUND"
	CodePersistedQueryNotSupported = "PERSISTED_QUERY_NOT_SUPPORTED"
	CodeQueryNotAllowed            = "QUERY_NOT_ALLOWED"
)

// Messages for errors whose own text is not meant for clients.
const (
	msgInvalidCode      = "The login code is invalid, expired or already used: call wx.login again and log in with the new code."
	msgInvalidPhoneCode = "The phone code is invalid, expired or already used: ask the person to tap the getPhoneNumber button again, then send the new code."
	msgPhoneRateLimited = "WeChat is limiting phone-number requests: wait a minute before trying again."
	msgForeignPhoneCode = "The phone code comes from another mini-program than the one this session logged in with: send the code of the getPhoneNumber button of the same mini-program."
	msgPhoneQuota       = "WeChat refuses phone-number requests: this mini-program has used up its paid quota of them. The server's operator must top it up; until then bindPhoneNumber cannot succeed."
	msgTooManyPhone     = "Too many phone codes for this user: wait extensions.retryAfter seconds, then ask the person to tap the getPhoneNumber button again."
	msgTooManyForUser   = "Too many requests of this kind for this user: wait extensions.retryAfter seconds before trying again."
	msgTooManyKeyChecks = "Too much data that does not decrypt for this user: wait extensions.retryAfter seconds. If it keeps failing, log in again (wx.login, then login) and get the data from WeChat again."
	msgForbidden        = "WeChat refused this login because it considers the account high-risk."
	msgRateLimited      = "Too many logins for this user: wait a minute before trying again."
	msgTooManyLogins    = "Too many logins from this address: wait extensions.retryAfter seconds before trying again."
	// A web page's limits: per address (the browser has no user yet), and WeChat's on
	// drawing mini-program codes.
	msgTooManyWebLogins    = "Too many web logins from this address: wait extensions.retryAfter seconds before starting another."
	msgWebLoginRateLimited = "WeChat is limiting mini-program codes: wait a minute before starting another web login."
	msgUnavailable         = "WeChat could not be reached or answered with an error: try again in a few seconds."
	msgWeChatBusy          = "WeChat is busy just now: try again in a few seconds."
	msgWeChatTimeout       = "WeChat did not answer in time: try again in a few seconds."
	msgTokenRejected       = "WeChat keeps rejecting the server's access token: try again in a minute."
	msgDatabaseDown        = "The server cannot reach its database just now: try again in a few seconds."
	msgSessionKeyStale     = "The data was made with a newer session key than this login has: log in again (wx.login, then login), get the data from WeChat again, and retry."
	msgInternal            = "Something went wrong on the server: try again later."
	msgBlocked             = "This account is blocked by the service's operators: it cannot log in until they unblock it."
)

// ErrorCode gives the contract code for an error a resolver returned.
func ErrorCode(err error) string {
	var bad *input.Error
	var limited *ratelimit.Error
	switch {
	case errors.As(err, &bad), errors.Is(err, wechat.ErrForeignCode):
		return CodeBadUserInput
	case errors.As(err, &limited):
		return CodeRateLimited
	case errors.Is(err, persisted.ErrNotFound):
		return CodePersistedQueryNotFound
	case errors.Is(err, persisted.ErrNotSupported):
		return CodePersistedQueryNotSupported
	case errors.Is(err, persisted.ErrNotAllowed):
		return CodeQueryNotAllowed
	case errors.Is(err, auth.ErrUnauthenticated):
		return CodeUnauthenticated
	case errors.Is(err, opendata.ErrSessionKeyStale):
		return CodeSessionKeyStale
	case errors.Is(err, wechat.ErrInvalidCode):
		return CodeInvalidCode
	case errors.Is(err, wechat.ErrRiskyUser), errors.Is(err, auth.ErrBlocked):
		return CodeForbidden
	case errors.Is(err, wechat.ErrRateLimited), errors.Is(err, auth.ErrTooManyWebLogins):
		return CodeRateLimited
	case errors.Is(err, wechat.ErrUnavailable), errors.Is(err, claim.ErrBusy),
		errors.Is(err, wechat.ErrAccessToken), // rejected, and no other token could be had or it was rejected too
		errors.Is(err, wechat.ErrQuotaExhausted):
		return CodeWeChatUnavailable
	case database.IsUnavailable(err), errors.Is(err, context.DeadlineExceeded):
		// WeChat's timeouts are mapped above: a request out of time past them was
		// waiting for the database.
		return CodeUnavailable
	default:
		return CodeInternal
	}
}

// outageLogEvery is how often the database being unavailable is logged at most: while
// it is, every request fails the same way.
const outageLogEvery = 10 * time.Second

// ErrorPresenter gives every error its contract code and a message a client developer
// can act on. Internal errors are logged in full and shown as a sentence that reveals
// nothing; the database being unavailable is logged once per outageLogEvery, with the
// number of such errors not logged since the previous line.
func ErrorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	outages := lograte.New(outageLogEvery, nil)
	return func(ctx context.Context, err error) *gqlerror.Error {
		gerr := graphql.DefaultErrorPresenter(ctx, err)
		if gerr.Err == nil {
			// gqlgen's own error: the document did not parse or validate, or the body
			// was not a request. The client sent something malformed.
			gerr.Message = limitMessage(gerr)
			setCode(gerr, CodeBadUserInput)
			return gerr
		}
		code := ErrorCode(gerr.Err)
		path := loggedPath(gerr.Path)
		phoneField := len(gerr.Path) > 0 && fmt.Sprint(gerr.Path[0]) == "bindPhoneNumber"
		webLoginField := len(gerr.Path) > 0 && fmt.Sprint(gerr.Path[0]) == "startWebLogin"
		switch code {
		case CodeBadUserInput:
			if errors.Is(gerr.Err, wechat.ErrForeignCode) {
				gerr.Message = msgForeignPhoneCode
			}
		case CodeInvalidCode:
			gerr.Message = msgInvalidCode
			if phoneField {
				gerr.Message = msgInvalidPhoneCode
			}
		case CodeSessionKeyStale:
			gerr.Message = msgSessionKeyStale
		case CodeForbidden:
			gerr.Message = msgForbidden
			if errors.Is(gerr.Err, auth.ErrBlocked) {
				gerr.Message = msgBlocked
			}
		case CodeRateLimited:
			if limited := (*ratelimit.Error)(nil); errors.As(gerr.Err, &limited) { // the server's own limits
				switch {
				case errors.Is(gerr.Err, auth.ErrTooManyLogins):
					gerr.Message = msgTooManyLogins
				case errors.Is(gerr.Err, auth.ErrTooManyWebLogins):
					gerr.Message = msgTooManyWebLogins
				case errors.Is(gerr.Err, phone.ErrTooManyCodes):
					gerr.Message = msgTooManyPhone
				case errors.Is(gerr.Err, opendata.ErrTooManyChecks):
					gerr.Message = msgTooManyKeyChecks
				default:
					gerr.Message = msgTooManyForUser
				}
				setExtension(gerr, "retryAfter", limited.RetryAfterSeconds())
			} else { // WeChat's own limit
				gerr.Message = msgRateLimited
				if phoneField {
					gerr.Message = msgPhoneRateLimited
				}
				if webLoginField {
					gerr.Message = msgWebLoginRateLimited
				}
				setExtension(gerr, "retryAfter", 60)
			}
		case CodeWeChatUnavailable:
			switch {
			case errors.Is(gerr.Err, wechat.ErrAccessToken):
				gerr.Message = msgTokenRejected
			case errors.Is(gerr.Err, wechat.ErrQuotaExhausted):
				log.ErrorContext(ctx, "wechat: the mini-program's quota of phone numbers is used up: top it up in the WeChat admin console (mp.weixin.qq.com); until then bindPhoneNumber fails", "error", gerr.Err, "path", path)
				gerr.Message = msgPhoneQuota
			case weChatBusy(gerr.Err):
				gerr.Message = msgWeChatBusy
			case errors.Is(gerr.Err, context.DeadlineExceeded), errors.Is(gerr.Err, claim.ErrBusy):
				gerr.Message = msgWeChatTimeout
			default:
				gerr.Message = msgUnavailable
			}
		case CodeUnavailable:
			if ok, held := outages.Allow(); ok {
				log.WarnContext(ctx, "graphql: the database is unavailable", "error", gerr.Err, "path", path, "not_logged", held)
			}
			gerr.Message = msgDatabaseDown
		case CodeInternal:
			switch {
			case errors.Is(gerr.Err, context.Canceled):
				log.InfoContext(ctx, "graphql: the client went away", "path", path)
			case errors.Is(gerr.Err, wechat.ErrConfig):
				log.ErrorContext(ctx, "wechat rejected the server's credentials: check WECHAT_APPID and WECHAT_SECRET", "error", gerr.Err, "path", path)
			case errors.Is(gerr.Err, wechat.ErrIPNotAllowed):
				log.ErrorContext(ctx, "wechat refused this server's IP address: add this server's outbound IP to the mini-program's API IP allow-list in the WeChat admin console", "error", gerr.Err, "path", path)
			default:
				log.ErrorContext(ctx, "graphql: internal error", "error", gerr.Err, "path", path)
			}
			gerr.Message = msgInternal
		}
		setCode(gerr, code)
		return gerr
	}
}

// maxLoggedPath bounds a field's path in a log line: its names are the client's
// aliases, which may be as long as a document.
const maxLoggedPath = 256

// loggedPath is a field's path as a log line shows it, clipped.
func loggedPath(p ast.Path) string {
	s := p.String()
	if len(s) <= maxLoggedPath {
		return s
	}
	return strings.ToValidUTF8(s[:maxLoggedPath], "") + "…"
}

// weChatBusy says whether WeChat answered "system busy" (errcode -1), on every attempt.
func weChatBusy(err error) bool {
	var api *wechat.APIError
	return errors.As(err, &api) && api.Errcode == -1
}

// limitMessage rewords gqlgen's and gqlparser's refusals of a document that is too big,
// so that each says which limit it hit and what to send instead.
func limitMessage(e *gqlerror.Error) string {
	var cost, limit int
	if _, err := fmt.Sscanf(e.Message, "operation has complexity %d, which exceeds the limit of %d", &cost, &limit); err == nil {
		return fmt.Sprintf("The query costs %d, past the complexity limit of %d: send one login per request (login, bindPhoneNumber and decryptOpenData cost %d each, other fields 1) and ask for fewer fields.", cost, limit, weChatCallCost)
	}
	if _, err := fmt.Sscanf(e.Message, "exceeded token limit of %d", &limit); err == nil {
		return fmt.Sprintf("The query has more than %d tokens, the parser's limit: ask for fewer fields at once.", limit)
	}
	return e.Message
}

// Recover turns a panic, in a resolver or anywhere gqlgen serves a request, into an
// INTERNAL error, logged with its value and the stack that led to it: gqlgen calls it
// from the deferred recover, on the stack of the panic.
func Recover(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "graphql: panic in a resolver", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return errors.New("panic in a resolver")
	}
}

func setCode(e *gqlerror.Error, code string) { setExtension(e, "code", code) }

func setExtension(e *gqlerror.Error, key string, value any) {
	if e.Extensions == nil {
		e.Extensions = map[string]any{}
	}
	e.Extensions[key] = value
}
