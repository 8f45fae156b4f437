package model

import (
	"io"
	"time"

	"github.com/99designs/gqlgen/graphql"
)

// MarshalTime writes the Time scalar as gqlgen's graphql.MarshalTime does: RFC 3339
// with the nanoseconds that are not zero, quoted, and null for the zero time. It
// formats straight into the response's buffer where it can, instead of into a string
// that is then quoted into another: a `me` carries two times, a session three.
func MarshalTime(t time.Time) graphql.Marshaler {
	if t.IsZero() {
		return graphql.Null
	}
	return graphql.WriterFunc(func(w io.Writer) {
		var b []byte
		if ab, ok := w.(interface{ AvailableBuffer() []byte }); ok {
			b = ab.AvailableBuffer() // bytes.Buffer's and bufio.Writer's spare room
		}
		// The format's characters (digits, "-:.TZ+") need no escaping in JSON.
		b = append(b, '"')
		b = t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
		w.Write(b)
	})
}

// UnmarshalTime reads the Time scalar as gqlgen's graphql.UnmarshalTime does.
func UnmarshalTime(v any) (time.Time, error) {
	return graphql.UnmarshalTime(v)
}
