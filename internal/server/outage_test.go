package server_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// TestRequestEndedBeforeItRan: a request whose context ends before its operation runs
// (the client closed its connection while the document was read and checked, or the
// deadline passed) gets an answer with a code, not a 500 from a panic: gqlgen runs
// nothing for such a request and hands back no response. The client that went away is
// logged as such; the one out of time is UNAVAILABLE.
func TestRequestEndedBeforeItRan(t *testing.T) {
	e := newEnv(t, testdb.Backends(t)[0])
	token := e.mustLogin(0, e.fake.IssueCode(fakewechat.User{OpenID: "oEnded0000000000000000000001"})).Token
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	for _, c := range []struct {
		name string
		ctx  context.Context
		want string // the answer's code
		log  string // the line that says what happened
	}{
		{"the client went away", canceled, "INTERNAL", "graphql: the client went away"},
		// The line about the database is written once per 10 s: the access line says it.
		{"the deadline passed", expired, "UNAVAILABLE", `"error_codes":["UNAVAILABLE"]`},
	} {
		for _, doc := range []string{`{ me { id } }`, `mutation { login(code: "` + e.fake.IssueCode(fakewechat.User{OpenID: "oEnded0000000000000000000002"}) + `") { token } }`} {
			seen := len(e.logs.String())
			req := newGraphQLRequest(e, doc)
			req.Header.Set("Authorization", "Bearer "+token)
			rec := httptest.NewRecorder()
			e.handlers[0].ServeHTTP(rec, req.WithContext(c.ctx))
			var r gqlResult
			jsonUnmarshal(t, rec.Body.Bytes(), &r)
			if rec.Code != 200 || r.Code() != c.want || string(r.Data["me"]) != "" && string(r.Data["me"]) != "null" {
				t.Errorf("%s, %.20s: status %d, %s; want 200 and %s", c.name, doc, rec.Code, rec.Body, c.want)
			}
			logs := e.logs.String()[seen:]
			if strings.Contains(logs, "panic") || !strings.Contains(logs, c.log) {
				t.Errorf("%s, %.20s: the log has no %q, or a panic:\n%s", c.name, doc, c.log, logs)
			}
		}
	}
}

// TestRefusedConnectionsAreUnavailable: with the database refusing connections past a
// limit (a user allowed 3, and 24 clients at once, as beside another service that used
// up the server's connections), every request answers with its data or UNAVAILABLE,
// never INTERNAL, and the log says so in a bounded number of lines rather than one a
// request.
func TestRefusedConnectionsAreUnavailable(t *testing.T) {
	const limit, clients, rounds = 3, 24, 30
	b := mysqlBackend(t)
	if v := testdb.MySQLServerVersion(t); strings.Contains(v, "TiDB") {
		t.Skipf("%s does not enforce MAX_USER_CONNECTIONS, which this test refuses connections with; the refused-connection path is tested on MariaDB", v)
	}
	ctx := context.Background()
	rootURL := b.URL(t)
	root, err := database.Open(ctx, rootURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	limited, err := database.Open(ctx, testdb.LimitedUser(t, rootURL, limit), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { limited.Close() })

	logins := newEnv(t, b, withDB(root))
	tokens := make([]string, clients)
	for i := range tokens {
		tokens[i] = logins.mustLogin(0, logins.fake.IssueCode(fakewechat.User{OpenID: fmt.Sprintf("oLimited%020d", i)})).Token
	}
	e := newEnv(t, b, withDB(limited))
	start := time.Now()
	var mu sync.Mutex
	answers := map[string]int{}
	var wg sync.WaitGroup
	for _, token := range tokens {
		wg.Go(func() {
			for range rounds {
				r := e.post(0, token, `{ me { id } sessions { id } }`, nil)
				codes := "ok"
				if len(r.Errors) > 0 {
					codes = ""
					for _, err := range r.Errors {
						c, _ := err.Extensions["code"].(string)
						codes += c + " "
					}
				}
				mu.Lock()
				answers[strings.TrimSpace(codes)]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	refused := 0 // answers with UNAVAILABLE
	for codes, n := range answers {
		for c := range strings.FieldsSeq(codes) {
			if c != "UNAVAILABLE" && c != "ok" {
				t.Errorf("%d answers with %s, want only data or UNAVAILABLE (all: %v)", n, codes, answers)
			}
			if c == "UNAVAILABLE" {
				refused += n
			}
		}
	}
	if answers["ok"] == clients*rounds {
		t.Fatalf("no request was refused (answers %v): the limit of %d connections was never reached, so this test proves nothing", answers, limit)
	}
	// One access line a request; past those, at most one line about the database per
	// 10 s, counting the ones it stands for.
	lines := map[string]int{}
	for line := range strings.Lines(e.logs.String()) {
		var l struct{ Level, Msg string }
		jsonUnmarshal(t, []byte(line), &l)
		if l.Msg != "request" {
			lines[l.Level+" "+l.Msg]++
		}
	}
	most := 1 + int(took/(10*time.Second))
	for line, n := range lines {
		if line != "WARN graphql: the database is unavailable" || n > most {
			t.Errorf("%d requests (%d refused) in %v logged %q %d times, want at most %d line(s) saying the database is unavailable and nothing else",
				clients*rounds, refused, took.Round(time.Millisecond), line, n, most)
		}
	}
	t.Logf("%d requests in %v: %v; log lines past the access lines: %v", clients*rounds, took.Round(time.Millisecond), answers, lines)
}
