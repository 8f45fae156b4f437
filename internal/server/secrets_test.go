package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/internal/auth"
	"github.com/wxlogin/wxlogin/internal/seal"
	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// TestNoSecretAtRestOrInLogs runs a mixed workload, then searches a dump of every table
// and the whole captured log for each token, session_key, code and the app secret, in
// the forms they could leak in.
func TestNoSecretAtRestOrInLogs(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		e := newEnv(t, b)
		var tokens, codes []string
		for i := range 3 {
			u := fakewechat.User{OpenID: "oSecret00000000000000000000" + string(rune('a'+i)), UnionID: "uSecret0000000000000000000"}
			code := e.fake.IssueCode(u)
			codes = append(codes, code)
			p := e.mustLogin(0, code)
			p2 := e.mustLogin(0, code) // a replay
			tokens = append(tokens, p.Token, p2.Token)
			e.me(0, p.Token)
		}
		e.post(0, tokens[0], `mutation { logout }`, nil)
		failed := e.fake.IssueCode(alice)
		codes = append(codes, failed)
		e.fake.InjectFault(fakewechat.FaultRateLimit, 1)
		e.login(0, failed)
		busy := e.fake.IssueCode(alice)
		codes = append(codes, busy)
		e.fake.InjectFault(fakewechat.FaultBusy, 1)
		e.login(0, busy)
		e.login(0, "never-valid-code-0000000000000001")
		codes = append(codes, "never-valid-code-0000000000000001")

		keys := e.sessionKeys()
		if len(keys) < 3 {
			t.Fatalf("saw %d session_keys from WeChat, want at least 3", len(keys))
		}

		// The stored session_key is the one WeChat gave, sealed to its identity.
		ring, _ := seal.NewKeyring(e.secretKey)
		ident := e.db.Identity.Query().FirstX(context.Background())
		plain, err := ring.Open(ident.SessionKey, auth.IdentityBinding(ident.Appid, ident.Openid))
		if err != nil || !contains(keys, string(plain)) {
			t.Errorf("stored session_key does not open to one WeChat gave: %v", err)
		}

		dump := dumpDatabase(t, e)
		logs := e.logs.String()
		if !strings.Contains(logs, `"msg":"request"`) || !strings.Contains(logs, "rid") {
			t.Fatalf("the captured log lacks request lines or WeChat rids; is it captured at all?\n%s", logs)
		}
		secrets := map[string][]string{"app secret": {testSecret}, "code": codes}
		secrets["token"] = tokens
		secrets["session_key"] = keys
		for kind, values := range secrets {
			for _, v := range values {
				for _, form := range forms(v) {
					if bytes.Contains(dump, form) {
						t.Errorf("database dump holds a %s (%q)", kind, form)
					}
					if strings.Contains(logs, string(form)) {
						t.Errorf("log holds a %s (%q)", kind, form)
					}
				}
			}
		}
	})
}

// forms are the shapes a secret could be stored or logged in: as text, and its decoded
// bytes raw and hex-encoded.
func forms(s string) [][]byte {
	out := [][]byte{[]byte(s)}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding} {
		if raw, err := enc.DecodeString(s); err == nil && len(raw) >= 12 {
			out = append(out, raw, []byte(hex.EncodeToString(raw)))
		}
	}
	return out
}

// dumpDatabase reads every row of every wxlogin table, as a backup would.
func dumpDatabase(t *testing.T, e *env) []byte {
	t.Helper()
	var dump bytes.Buffer
	for _, table := range []string{"users", "identities", "sessions", "login_codes", "audit_events"} {
		text, n := dumpTable(t, e.db.SQL, table)
		if table != "login_codes" && n == 0 {
			t.Fatalf("table %s is empty: the dump would prove nothing", table)
		}
		dump.WriteString(text)
	}
	return dump.Bytes()
}

// dumpTable is every row of a table as text, bytes also in hex, and how many rows.
func dumpTable(t *testing.T, db *sql.DB, table string) (string, int) {
	t.Helper()
	rows, err := db.Query("SELECT * FROM " + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var dump strings.Builder
	n := 0
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		dump.WriteString(table)
		for _, v := range vals {
			switch v := v.(type) {
			case []byte:
				dump.WriteString("|" + string(v) + " " + hex.EncodeToString(v))
			default:
				fmt.Fprintf(&dump, "|%v", v)
			}
		}
		dump.WriteByte('\n')
		n++
	}
	return dump.String(), n
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
