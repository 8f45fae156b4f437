package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

var (
	builtOnce sync.Once
	built     string
	buildErr  error
)

// binary builds wxlogin once for the tests that run it as operators do.
func binary(t *testing.T) string {
	builtOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wxlogin-admin-")
		if err != nil {
			buildErr = err
			return
		}
		built = filepath.Join(dir, "wxlogin")
		out, err := exec.Command("go", "build", "-o", built, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v", buildErr)
	}
	return built
}

// admin runs `wxlogin admin args…` with the server's settings, and returns what it
// printed and its exit status.
func admin(t *testing.T, vars map[string]string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	return wxlogin(t, vars, append([]string{"admin"}, args...)...)
}

// wxlogin runs the binary with args and the settings vars (but WXLOGIN_ADDR, unless
// it serves), and returns what it printed and its exit status.
func wxlogin(t *testing.T, vars map[string]string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range vars {
		if k != "WXLOGIN_ADDR" || len(args) == 0 {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		status = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), status
}

// TestAdminCommands: an operator's commands, run as a process of their own against a
// running server's database: user shows the user without secrets; block ends the
// sessions and makes logins FORBIDDEN until unblock; revoke ends the sessions; delete
// ends the account; an unknown user is exit status 1 and one line.
func TestAdminCommands(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		fake, vars := configured(t, b.URL(t), fakewechat.Options{AppID: "wxprod0000000001", Secret: "prod-secret"})
		// Another process changes the sessions: every request reads them afresh.
		vars["WXLOGIN_SESSION_CACHE_TTL"] = "0"
		s := start(t, vars)
		person := fakewechat.User{OpenID: "oAdmin00000000000000000000001", UnionID: "uAdmin0000000000000000000001"}
		login := func() map[string]any {
			return s.graphql(t, "", `mutation { login(code: "`+fake.IssueCode(person)+`") { token isNewUser user { id } } }`)
		}
		first := login()
		token, _ := dig(first, "data", "login", "token").(string)
		id, _ := dig(first, "data", "login", "user", "id").(string)

		out, errOut, status := admin(t, vars, "user", person.OpenID)
		var shown map[string]any
		if err := json.Unmarshal([]byte(out), &shown); status != 0 || err != nil {
			t.Fatalf("admin user: status %d, %v\n%s%s", status, err, out, errOut)
		}
		if dig(shown, "user", "id") != id || len(shown["identities"].([]any)) != 1 || len(shown["sessions"].([]any)) != 1 {
			t.Errorf("admin user = %s", out)
		}
		if strings.Contains(out, "session_key") || strings.Contains(out, "sessionKey") || strings.Contains(out, token) {
			t.Errorf("admin user shows a secret: %s", out)
		}
		if byUnion, _, _ := admin(t, vars, "user", person.UnionID); !strings.Contains(byUnion, id) {
			t.Errorf("admin user by unionid: %s", byUnion)
		}

		out, _, status = admin(t, vars, "block", id, "--reason", "chargeback fraud")
		if status != 0 || !strings.Contains(out, `"sessionsEnded": 1`) {
			t.Fatalf("admin block: %d %s", status, out)
		}
		if me := s.graphql(t, token, `{ me { id } }`); dig(me, "data") != nil && dig(me, "data", "me") != nil {
			t.Errorf("a blocked user's session still works: %v", me)
		}
		refused := login()
		errs, _ := refused["errors"].([]any)
		if len(errs) == 0 || dig(errs[0], "extensions", "code") != "FORBIDDEN" || !strings.Contains(dig(errs[0], "message").(string), "blocked") {
			t.Errorf("a blocked user's login: %v, want FORBIDDEN saying the account is blocked", refused)
		}
		out, _, _ = admin(t, vars, "user", id)
		if !strings.Contains(out, `"blockedReason": "chargeback fraud"`) || !strings.Contains(out, `"event": "blocked"`) {
			t.Errorf("admin user after the block: %s", out)
		}

		if out, _, status := admin(t, vars, "unblock", id); status != 0 || !strings.Contains(out, `"blocked": false`) {
			t.Fatalf("admin unblock: %d %s", status, out)
		}
		again := login()
		token, _ = dig(again, "data", "login", "token").(string)
		if token == "" || dig(again, "data", "login", "user", "id") != id {
			t.Fatalf("a login after the unblock: %v", again)
		}
		if out, _, _ := admin(t, vars, "revoke", person.OpenID); !strings.Contains(out, `"sessionsEnded": 1`) {
			t.Errorf("admin revoke: %s", out)
		}
		if me := s.graphql(t, token, `{ me { id } }`); dig(me, "data") != nil && dig(me, "data", "me") != nil {
			t.Errorf("a session after admin revoke still works: %v", me)
		}
		if out, _, status := admin(t, vars, "delete", id); status != 0 || !strings.Contains(out, `"deleted": true`) {
			t.Fatalf("admin delete: %d %s", status, out)
		}
		if fresh := login(); dig(fresh, "data", "login", "isNewUser") != true || dig(fresh, "data", "login", "user", "id") == id {
			t.Errorf("a login after admin delete: %v, want a new user", fresh)
		}

		for _, args := range [][]string{{"user", "oNobody"}, {"delete", id}} {
			out, errOut, status := admin(t, vars, args...)
			if status != 1 || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "no user") {
				t.Errorf("admin %v for an unknown user: status %d, stdout %q, stderr %q; want 1 and one line", args, status, out, errOut)
			}
		}
		if _, errOut, status := admin(t, vars, "frobnicate", id); status != 2 || !strings.Contains(errOut, "usage") {
			t.Errorf("an unknown command: %d %q", status, errOut)
		}
	})
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(binary(t), "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "wxlogin ") || !strings.Contains(string(out), "go1.") {
		t.Errorf("wxlogin --version: %q, %v", out, err)
	}
}

// TestMigrateCommands: wxlogin migrate status and up, as a process, on a database an
// earlier version migrated automatically; a server with WXLOGIN_AUTO_MIGRATE=off
// refuses to start on it until then, naming the command.
func TestMigrateCommands(t *testing.T) {
	var b testdb.Backend
	for _, one := range testdb.Backends(t) {
		if one.Name == "mysql" {
			b = one
		}
	}
	if b.Name == "" {
		t.Skip("versioned migrations are MySQL's")
	}
	if v := testdb.MySQLServerVersion(t); !strings.Contains(strings.ToLower(v), "mariadb") {
		t.Skipf("the migration files are MariaDB's DDL; on %s start-up keeps to ent's automatic migration", v)
	}
	vars := map[string]string{"WXLOGIN_DATABASE_URL": b.URL(t), "WXLOGIN_AUTO_MIGRATE": "off"}
	run := func(args ...string) (string, string, int) { return wxlogin(t, vars, args...) }
	if out, _, status := run("migrate", "status"); status != 0 || !strings.Contains(out, `"upToDate": false`) {
		t.Errorf("migrate status on an empty database: %d %s", status, out)
	}
	vars["WXLOGIN_ADDR"] = "127.0.0.1:0"
	if _, errOut, status := run(); status != 1 || !strings.Contains(errOut, "wxlogin migrate up") {
		t.Errorf("serving a database that is behind with WXLOGIN_AUTO_MIGRATE=off: %d %q", status, errOut)
	}
	if out, errOut, status := run("migrate", "up"); status != 0 || !strings.Contains(out, `"upToDate": true`) || !strings.Contains(out, `"pending": []`) {
		t.Errorf("migrate up: %d %s %s", status, out, errOut)
	}
}
