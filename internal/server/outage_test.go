package server_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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
		{"the deadline passed", expired, "UNAVAILABLE", "graphql: the database is unavailable"},
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
