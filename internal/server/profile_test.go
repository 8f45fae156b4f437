package server_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/internal/testdb"
)

const updateProfile = `mutation($in: UpdateProfileInput!) { updateProfile(input: $in) { id nickname avatarUrl } }`

type profileView struct {
	ID        string  `json:"id"`
	Nickname  *string `json:"nickname"`
	AvatarURL *string `json:"avatarUrl"`
}

func (e *env) updateProfile(token string, in map[string]any) (profileView, string) {
	e.t.Helper()
	r := e.post(0, token, updateProfile, map[string]any{"in": in})
	if c := r.Code(); c != "" {
		return profileView{}, c
	}
	var p profileView
	if err := json.Unmarshal(r.Data["updateProfile"], &p); err != nil {
		e.t.Fatal(err)
	}
	return p, ""
}

func TestUpdateProfile(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		bobs := e.mustLogin(0, e.fake.IssueCode(bob))

		got, c := e.updateProfile(p.Token, map[string]any{"nickname": "  小明 Alice  ", "avatarUrl": "https://cdn.example.com/a/1.png?v=2"})
		if c != "" || strOrNil(got.Nickname) != "小明 Alice" || strOrNil(got.AvatarURL) != "https://cdn.example.com/a/1.png?v=2" {
			t.Fatalf("updateProfile = %+v %s, want the trimmed nickname and the URL", got, c)
		}
		// Left out: unchanged. Empty: cleared.
		got, _ = e.updateProfile(p.Token, map[string]any{"avatarUrl": ""})
		if strOrNil(got.Nickname) != "小明 Alice" || got.AvatarURL != nil {
			t.Errorf("after clearing the avatar: %+v, want the nickname kept and no avatar", got)
		}
		// It is the user's: me shows it, on a later session too; bob's is untouched.
		again := e.mustLogin(0, e.fake.IssueCode(alice))
		r := e.post(0, again.Token, `{ me { nickname avatarUrl } }`, nil)
		if !strings.Contains(string(r.Data["me"]), "小明 Alice") {
			t.Errorf("me on another session = %s, want the nickname", r.Data["me"])
		}
		r = e.post(0, bobs.Token, `{ me { nickname } }`, nil)
		if string(r.Data["me"]) != `{"nickname":null}` {
			t.Errorf("bob's me = %s, want no nickname", r.Data["me"])
		}
	})
}

func TestUpdateProfileValidation(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		p := e.mustLogin(0, e.fake.IssueCode(alice))
		e.updateProfile(p.Token, map[string]any{"nickname": "kept", "avatarUrl": "https://cdn.example.com/kept.png"})
		for name, in := range map[string]map[string]any{
			"33-character nickname": {"nickname": strings.Repeat("字", 33)},
			"control character":     {"nickname": "a\u0007b"},
			"direction override":    {"nickname": "a\u202eb"},
			"zero-width space":      {"nickname": "a\u200bb"},
			"http URL":              {"avatarUrl": "http://cdn.example.com/a.png"},
			"javascript URL":        {"avatarUrl": "javascript:alert(1)"},
			"local file":            {"avatarUrl": "wxfile://tmp_123.png"},
			"no host":               {"avatarUrl": "https:///a.png"},
			"credentials":           {"avatarUrl": "https://user:pw@cdn.example.com/a.png"},
			"space":                 {"avatarUrl": "https://cdn.example.com/a b.png"},
			"over 1024 bytes":       {"avatarUrl": "https://cdn.example.com/" + strings.Repeat("a", 1024)},
			"one bad field":         {"nickname": "fine", "avatarUrl": "ftp://x/y"},
		} {
			if _, c := e.updateProfile(p.Token, in); c != "BAD_USER_INPUT" {
				t.Errorf("%s: %q, want BAD_USER_INPUT", name, c)
			}
		}
		// Nothing bad was stored, not even the good half of a bad update.
		r := e.post(0, p.Token, `{ me { nickname avatarUrl } }`, nil)
		if string(r.Data["me"]) != `{"nickname":"kept","avatarUrl":"https://cdn.example.com/kept.png"}` {
			t.Errorf("profile after rejected updates = %s", r.Data["me"])
		}
		for _, nick := range []string{"小明👩\u200d💻", "🏳️\u200d🌈彩虹"} { // emoji sequences use the joiner
			if got, c := e.updateProfile(p.Token, map[string]any{"nickname": nick}); c != "" || strOrNil(got.Nickname) != nick {
				t.Errorf("nickname %q: %q %v, want accepted", nick, c, got.Nickname)
			}
		}
		if got, c := e.updateProfile(p.Token, map[string]any{"nickname": strings.Repeat("字", 32)}); c != "" || got.Nickname == nil {
			t.Errorf("32-character nickname: %q, want accepted", c)
		}
		if _, c := e.updateProfile("", map[string]any{"nickname": "x"}); c != "UNAUTHENTICATED" {
			t.Errorf("without a token: %q", c)
		}
	})
}
