package server_test

import (
	"context"
	"errors"
	"testing"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wxlogin/wxlogin/graph"
	"github.com/wxlogin/wxlogin/internal/persisted"
	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wxclient"
)

// errCode is the extensions.code of the first GraphQL error in err, or "".
func errCode(err error) string {
	var list gqlerror.List
	if errors.As(err, &list) && len(list) > 0 {
		c, _ := list[0].Extensions["code"].(string)
		return c
	}
	return ""
}

// TestTypedGoClient drives a whole session through the Go client genqlient generates
// from the schema and the client documents: the schema works for client generation,
// and the client documents do what their names say. It runs in allow-list mode too,
// where the generated client's own formatting of the documents must be accepted.
func TestTypedGoClient(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		for _, mode := range []persisted.Mode{persisted.Automatic, persisted.AllowList} {
			t.Run(string(mode), func(t *testing.T) {
				e := newEnv(t, b, func(e *env) { e.api = graph.Options{PersistedQueries: mode} })
				ctx := context.Background()
				endpoint := e.instances[0].URL + "/graphql"
				anon := wxclient.New(endpoint, "", e.client)

				first, err := wxclient.Login(ctx, anon, e.fake.IssueCode(alice), nil)
				if err != nil {
					t.Fatalf("Login: %v", err)
				}
				l := first.Login
				if l.Token == "" || !l.IsNewUser || l.User.Openid != alice.OpenID || l.User.Unionid == nil || *l.User.Unionid != alice.UnionID || l.ExpiresAt.IsZero() {
					t.Fatalf("Login = %+v", l)
				}
				second, err := wxclient.Login(ctx, anon, e.fake.IssueCode(alice), nil)
				if err != nil || second.Login.IsNewUser || second.Login.User.Id != l.User.Id {
					t.Fatalf("second Login = %+v, %v; want the same user, not new", second, err)
				}
				c := wxclient.New(endpoint, l.Token, e.client)

				me, err := wxclient.Me(ctx, c)
				if err != nil || me.Me.Id != l.User.Id || me.Me.CreatedAt.IsZero() || me.Me.PhoneNumber != nil {
					t.Fatalf("Me = %+v, %v", me, err)
				}

				// Setting the nickname alone keeps the avatar.
				nick, avatar := "Alice", "https://cdn.example.com/a.png"
				if _, err := wxclient.UpdateProfile(ctx, c, wxclient.UpdateProfileInput{Nickname: &nick, AvatarUrl: &avatar}); err != nil {
					t.Fatalf("UpdateProfile: %v", err)
				}
				nick2 := "Alice L."
				p, err := wxclient.UpdateProfile(ctx, c, wxclient.UpdateProfileInput{Nickname: &nick2})
				if err != nil || p.UpdateProfile.Nickname == nil || *p.UpdateProfile.Nickname != nick2 || p.UpdateProfile.AvatarUrl == nil || *p.UpdateProfile.AvatarUrl != avatar {
					t.Errorf("UpdateProfile of the nickname alone = %+v, %v; want the avatar kept", p, err)
				}

				list, err := wxclient.Sessions(ctx, c)
				if err != nil || len(list.Sessions) != 2 {
					t.Fatalf("Sessions = %+v, %v; want 2", list, err)
				}
				var other string
				for _, s := range list.Sessions {
					if !s.Current {
						other = s.Id
					}
				}
				if r, err := wxclient.RevokeSession(ctx, c, other); err != nil || !r.RevokeSession {
					t.Errorf("RevokeSession = %+v, %v", r, err)
				}
				if _, err := wxclient.Me(ctx, wxclient.New(endpoint, second.Login.Token, e.client)); errCode(err) != "UNAUTHENTICATED" {
					t.Errorf("Me with the revoked session = %v, want UNAUTHENTICATED", err)
				}
				keep := true
				if n, err := wxclient.LogoutAll(ctx, c, &keep); err != nil || n.LogoutAll != 0 {
					t.Errorf("LogoutAll(keepCurrent) = %+v, %v; want 0 (the other is already revoked)", n, err)
				}
				if out, err := wxclient.Logout(ctx, c); err != nil || !out.Logout {
					t.Errorf("Logout = %+v, %v", out, err)
				}
				if _, err := wxclient.Me(ctx, c); errCode(err) != "UNAUTHENTICATED" {
					t.Errorf("Me after Logout = %v, want UNAUTHENTICATED", err)
				}
				if _, err := wxclient.Login(ctx, anon, "never-issued", nil); errCode(err) != "INVALID_CODE" {
					t.Errorf("Login with a bad code = %v, want INVALID_CODE", err)
				}
			})
		}
	})
}
