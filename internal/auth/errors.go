package auth

import (
	"errors"
	"fmt"

	"github.com/wxlogin/wxlogin/internal/wechat"
)

// ErrUnauthenticated is the class of every "no valid session" error.
var ErrUnauthenticated = errors.New("not logged in")

// authError says why a request has no session, in words a client developer can act on.
type authError struct{ msg string }

func (e *authError) Error() string { return e.msg }
func (e *authError) Is(target error) bool {
	return target == ErrUnauthenticated
}

var (
	errNoToken        = &authError{"You are not logged in: send the token from the login mutation as 'Authorization: Bearer <token>'."}
	errMalformedToken = &authError{"The Authorization header is malformed: send 'Authorization: Bearer <token>' with the token from the login mutation."}
	errInvalidToken   = &authError{"The session token is invalid, expired or revoked: log in again with a new wx.login code."}
	errSessionEnded   = &authError{"An earlier field of this request ended its session (logout, logoutAll or revokeSession of it), so this one ran without it: log in again with a new wx.login code."}
)

// errCodeSpent refuses a code that has logged in MaxLoginsPerCode times: to the client
// it is a used code, as WeChat's own 40163 would be.
var errCodeSpent = fmt.Errorf("auth: the code has logged in %d times already: %w", MaxLoginsPerCode, wechat.ErrInvalidCode)
