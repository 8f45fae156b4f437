// Package input is the error for malformed arguments: rejected before any work, with a
// message that tells the client developer what to send instead. The API answers it with
// BAD_USER_INPUT.
package input

// Error is a malformed argument.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

// Errorf returns an Error with the message msg.
func Errorf(msg string) error { return &Error{Msg: msg} }
