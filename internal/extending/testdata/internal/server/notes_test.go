package server_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/internal/testdb"
)

// TestNotes: the example of docs/extending.md, end to end on every database: a user
// keeps notes and sees only their own; without a session both fields are
// UNAUTHENTICATED; a note too long is BAD_USER_INPUT.
func TestNotes(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		a := e.mustLogin(0, e.fake.IssueCode(alice)).Token
		o := e.mustLogin(0, e.fake.IssueCode(bob)).Token
		for _, text := range []string{"buy tea", "call mum"} {
			if r := e.post(0, a, `mutation ($t: String!) { addNote(text: $t) { id text } }`, map[string]any{"t": text}); r.Code() != "" {
				t.Fatalf("addNote: %s", r.Code())
			}
		}
		r := e.post(0, a, `{ myNotes { text } }`, nil)
		var got []struct{ Text string }
		json.Unmarshal(r.Data["myNotes"], &got)
		if len(got) != 2 || got[0].Text != "call mum" {
			t.Errorf("alice's notes: %s, want both, newest first", r.Data["myNotes"])
		}
		if r := e.post(0, o, `{ myNotes { text } }`, nil); string(r.Data["myNotes"]) != "[]" {
			t.Errorf("bob sees %s, want none of alice's", r.Data["myNotes"])
		}
		if r := e.post(0, "", `{ myNotes { text } }`, nil); r.Code() != "UNAUTHENTICATED" {
			t.Errorf("myNotes without a session: %q", r.Code())
		}
		if r := e.post(0, "", `mutation { addNote(text: "x") { id } }`, nil); r.Code() != "UNAUTHENTICATED" {
			t.Errorf("addNote without a session: %q", r.Code())
		}
		if r := e.post(0, a, `mutation ($t: String!) { addNote(text: $t) { id } }`, map[string]any{"t": strings.Repeat("x", 1001)}); r.Code() != "BAD_USER_INPUT" {
			t.Errorf("a note of 1,001 characters: %q, want BAD_USER_INPUT", r.Code())
		}
	})
}
