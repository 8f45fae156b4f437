package model

import (
	"bufio"
	"bytes"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
)

// The Time scalar must read on the wire exactly as gqlgen's own.
func TestMarshalTimeWritesWhatGqlgenWrites(t *testing.T) {
	shanghai := time.FixedZone("CST", 8*3600)
	for _, tm := range []time.Time{
		time.Date(2026, 11, 24, 19, 58, 9, 828309000, time.UTC),
		time.Date(2026, 11, 24, 19, 58, 9, 0, time.UTC),
		time.Date(2026, 11, 24, 19, 58, 9, 100, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 600000000, shanghai),
		time.Unix(0, 0).UTC(),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("", -(9*3600+30*60))),
	} {
		var want bytes.Buffer
		graphql.MarshalTime(tm).MarshalGQL(&want)

		var buf bytes.Buffer // the response's buffer: the direct path
		buf.WriteString("x")
		MarshalTime(tm).MarshalGQL(&buf)
		if got := buf.String()[1:]; got != want.String() {
			t.Errorf("into a bytes.Buffer: %s, gqlgen writes %s", got, want.String())
		}

		var plain bytes.Buffer // any other writer
		MarshalTime(tm).MarshalGQL(struct{ *bytes.Buffer }{&plain})
		if plain.String() != want.String() {
			t.Errorf("into a plain writer: %s, gqlgen writes %s", plain.String(), want.String())
		}

		var out bytes.Buffer
		bw := bufio.NewWriterSize(&out, 16)
		MarshalTime(tm).MarshalGQL(bw)
		bw.Flush()
		if out.String() != want.String() {
			t.Errorf("into a small bufio.Writer: %s, gqlgen writes %s", out.String(), want.String())
		}
	}
	if MarshalTime(time.Time{}) != graphql.Null {
		t.Error("the zero time is not null")
	}
}
