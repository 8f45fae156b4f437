//go:build reliability

package reliability

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The server's connection limits the README documents (Limits: connections).
const (
	headerReadTimeout = 10 * time.Second
	bodyReadTimeout   = 30 * time.Second
	cutSlack          = 5 * time.Second // a loaded machine's lateness in noticing the close
)

// TestHostileClients: slow headers and slow bodies are cut off by the server's
// timeouts while real clients keep being served; thousands of idle connections do not
// starve real ones; malformed, mistyped, invalid, huge, deeply nested and duplicated
// input each gets a clear refusal, and the server stays healthy.
func TestHostileClients(t *testing.T) {
	s := newStack(t)
	srv := s.start("a")
	fig := newFigures(t, "hostile", "Hostile clients")
	addr := strings.TrimPrefix(srv.base, "http://")
	real := newClient(srv.base, 8)
	defer real.close()
	// The baseline is taken once real clients have run, so that the pools (database,
	// WeChat) are at their working size.
	warm, stop := context.WithTimeout(context.Background(), 2*time.Second)
	_, wait := realLoad(warm, s, real, 4, "warm")
	<-warm.Done()
	wait()
	stop()
	real.close()
	time.Sleep(time.Second)
	baseline := srv.health()
	fig.add("- baseline after 2 s of real clients: %s", baseline)

	t.Run("malformed", func(t *testing.T) { malformed(t, s, srv, fig) })
	t.Run("slow clients", func(t *testing.T) { slowClients(t, s, addr, real, fig) })
	t.Run("idle connections", func(t *testing.T) { idleConnections(t, s, srv, addr, real, fig) })

	// Healthy afterwards: it logs in and answers, and what the hostile clients held is
	// given back.
	if _, _, a := real.login(context.Background(), s.fake.IssueCode(user("hostile-after"))); !a.ok() {
		t.Errorf("a login after the hostile clients: %s", a.kind())
	}
	real.close()
	end := srv.settle(baseline, 15*time.Second)
	if end.grewFrom(baseline) {
		t.Errorf("after the hostile clients left: %s; before: %s", end, baseline)
	}
	fig.add("- at the end: %s", end)
	fig.add("- server warnings and errors logged: %s", srv.log.warnings())
}

// realLoad runs logins and `me` with workers clients until ctx ends, as the users the
// hostile ones must not starve.
func realLoad(ctx context.Context, s *stack, c *client, workers int, prefix string) (*tally, func()) {
	tl := newTally(false)
	wait := run(ctx, workers, func(ctx context.Context, w int) {
		for i := 0; ctx.Err() == nil; i++ {
			start := time.Now()
			token, _, a := c.login(context.Background(), s.fake.IssueCode(user(fmt.Sprintf("%s-w%d-u%d", prefix, w, i/3))))
			tl.add("login", start, a)
			if token == "" {
				pause(ctx, 50*time.Millisecond)
				continue
			}
			start = time.Now()
			_, a = c.me(context.Background(), token)
			tl.add("me", start, a)
		}
	})
	return tl, wait
}

// malformed posts bodies no client should send, and checks each answer.
func malformed(t *testing.T, s *stack, srv *proc, fig *figures) {
	const loginDoc = `mutation($c: String!) { login(code: $c) { token } }`
	nested := func(depth int) string { return strings.Repeat("[", depth) + `"x"` + strings.Repeat("]", depth) }
	big := func(n int) string { return strings.Repeat("a", n) }
	cases := []struct {
		name, body string
		status     int    // the HTTP status wanted
		code       string // the GraphQL error code wanted
	}{
		{"truncated JSON", `{"query": "{ me { id } }"`, 400, "BAD_USER_INPUT"},
		{"not JSON at all", `query { me { id } }`, 400, "BAD_USER_INPUT"},
		{"empty body", ``, 400, "BAD_USER_INPUT"},
		{"a JSON array (batch)", `[{"query": "{ me { id } }"}]`, 400, "BAD_USER_INPUT"},
		{"JSON null", `null`, 400, "BAD_USER_INPUT"},
		{"query a number", `{"query": 123}`, 400, "BAD_USER_INPUT"},
		{"variables a string", `{"query": "{ me { id } }", "variables": "{}"}`, 400, "BAD_USER_INPUT"},
		{"operationName a list", `{"query": "{ me { id } }", "operationName": []}`, 400, "BAD_USER_INPUT"},
		{"variable of the wrong type", `{"query": "` + loginDoc + `", "variables": {"c": 42}}`, 400, "BAD_USER_INPUT"},
		{"variable missing", `{"query": "` + loginDoc + `", "variables": {}}`, 400, "BAD_USER_INPUT"},
		{"invalid UTF-8 in the query", "{\"query\": \"{ me { id \xff\xfe } }\"}", 400, "BAD_USER_INPUT"},
		{"invalid UTF-8 in a variable", "{\"query\": \"" + loginDoc + "\", \"variables\": {\"c\": \"dev-\xc3\x28\"}}", 400, "BAD_USER_INPUT"},
		{"a key twice", `{"query": "{ me { id } }", "query": "{ __typename }"}`, 400, "BAD_USER_INPUT"},
		{"a variable twice", `{"query": "` + loginDoc + `", "variables": {"c": "dev-a", "c": "dev-b"}}`, 400, "BAD_USER_INPUT"},
		{"huge variable, past the 1 MiB body limit", `{"query": "` + loginDoc + `", "variables": {"c": "` + big(1<<20+1000) + `"}}`, 413, "BAD_USER_INPUT"},
		// Within the body limit, the operation runs and refuses its argument: 200,
		// as GraphQL over HTTP has it for an operation that ran, and WeChat is not asked.
		{"huge variable within the limit (900 KB code)", `{"query": "` + loginDoc + `", "variables": {"c": "` + big(900_000) + `"}}`, 200, "BAD_USER_INPUT"},
		// Variables the operation does not declare are ignored, as GraphQL has it: the
		// query runs (and needs a session).
		{"60,000 undeclared variables", `{"query": "{ me { id } }", "variables": {"c": 1` + manyKeys(60_000) + `}}`, 200, "UNAUTHENTICATED"},
		{"lists nested 5,000 deep in a variable", `{"query": "` + loginDoc + `", "variables": {"c": ` + nested(5000) + `}}`, 400, "BAD_USER_INPUT"},
		{"lists nested 100,000 deep in a variable", `{"query": "` + loginDoc + `", "variables": {"c": ` + nested(100_000) + `}}`, 400, "BAD_USER_INPUT"},
		{"objects nested 100,000 deep in an unused variable", `{"query": "{ me { id } }", "variables": {"x": ` + strings.Repeat(`{"a":`, 100_000) + `1` + strings.Repeat(`}`, 100_000) + `}}`, 400, "BAD_USER_INPUT"},
		{"a document 300,000 levels deep", `{"query": "` + strings.Repeat("{a", 300_000) + `"}`, 400, "BAD_USER_INPUT"},
	}
	hc := &http.Client{Timeout: requestDeadline + 15*time.Second}
	callsBefore := s.fake.Calls()
	fig.add("")
	fig.add("| hostile input | bytes | HTTP status | code | answered in |")
	fig.add("|---|---|---|---|---|")
	for _, c := range cases {
		req, _ := http.NewRequest(http.MethodPost, srv.base+"/graphql", strings.NewReader(c.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/graphql-response+json")
		start := time.Now()
		res, err := hc.Do(req)
		took := time.Since(start)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var body struct {
			Errors []struct {
				Message    string
				Extensions struct{ Code string }
			}
		}
		json.Unmarshal(raw, &body)
		code, msg := "", ""
		if len(body.Errors) > 0 {
			code, msg = body.Errors[0].Extensions.Code, body.Errors[0].Message
		}
		if res.StatusCode != c.status || code != c.code || msg == "" {
			t.Errorf("%s: HTTP %d, code %q, message %q; want HTTP %d with %s and a message", c.name, res.StatusCode, code, msg, c.status, c.code)
		}
		fig.add("| %s | %d | %d | %s | %s |", c.name, len(c.body), res.StatusCode, code, ms(took))
		if res := (&client{base: srv.base, hc: hc}).ready(); res != 200 {
			t.Fatalf("after %s: /readyz = %d", c.name, res)
		}
	}
	if n := s.fake.Calls() - callsBefore; n != 0 {
		t.Errorf("hostile input reached WeChat %d times", n)
	}
}

// manyKeys is n more JSON members "v0": 0, "v1": 0, …, each preceded by a comma.
func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `, "v%d": 0`, i)
	}
	return b.String()
}

// slowClients sends headers a byte a second (slowloris) and bodies a byte a second
// on many connections, while real clients log in, and measures when the server cuts
// each off.
func slowClients(t *testing.T, s *stack, addr string, real *client, fig *figures) {
	const headerConns, bodyConns, workers = 200, 50, 4
	ctx, stop := context.WithCancel(context.Background())
	tl, waitLoad := realLoad(ctx, s, real, workers, "slow")
	pause(ctx, 2*time.Second)

	type cut struct {
		after time.Duration
		sent  int
		err   error
	}
	var mu sync.Mutex
	var headerCuts, bodyCuts []cut
	var wg sync.WaitGroup
	trickle := func(prefix string, list *[]cut) {
		defer wg.Done()
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			mu.Lock()
			*list = append(*list, cut{err: err})
			mu.Unlock()
			return
		}
		defer conn.Close()
		start := time.Now()
		// Whatever the server answers is read away; the cut is when reading ends.
		closed := make(chan struct{})
		go func() {
			io.Copy(io.Discard, conn)
			close(closed)
		}()
		sent := 0
		if _, err := io.WriteString(conn, prefix); err == nil {
			sent = len(prefix)
		}
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		limit := time.After(bodyReadTimeout + 2*cutSlack) // give up: the server never cut it
		for {
			select {
			case <-closed:
				mu.Lock()
				*list = append(*list, cut{after: time.Since(start), sent: sent})
				mu.Unlock()
				return
			case <-limit:
				mu.Lock()
				*list = append(*list, cut{after: time.Since(start), sent: sent, err: fmt.Errorf("still open after %s", time.Since(start).Round(time.Second))})
				mu.Unlock()
				return
			case <-tick.C:
				if _, err := conn.Write([]byte("a")); err == nil {
					sent++
				}
			}
		}
	}
	startedAt := time.Now()
	for range headerConns {
		wg.Add(1)
		go trickle("POST /graphql HTTP/1.1\r\nHost: wxlogin\r\nX-Slow: ", &headerCuts)
	}
	for range bodyConns {
		wg.Add(1)
		go trickle("POST /graphql HTTP/1.1\r\nHost: wxlogin\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"query\": \"", &bodyCuts)
	}
	wg.Wait()
	stop()
	waitLoad()

	check := func(what string, list []cut, bound time.Duration) (slowest time.Duration, bytes int) {
		for _, c := range list {
			if c.err != nil {
				t.Errorf("%s: %v", what, c.err)
				continue
			}
			if c.after > bound+cutSlack {
				t.Errorf("%s cut off after %s, want within %s", what, c.after.Round(time.Millisecond), bound)
			}
			slowest = max(slowest, c.after)
			bytes = max(bytes, c.sent)
		}
		return slowest, bytes
	}
	hSlow, hBytes := check("slow headers", headerCuts, headerReadTimeout)
	bSlow, bBytes := check("slow body", bodyCuts, bodyReadTimeout)
	total, errs := tl.total()
	if errs != 0 {
		t.Errorf("real clients during the slow ones: %s", tl.byKind())
	}
	fig.add("")
	fig.add("- slow headers: %d connections sending a header byte a second; all cut off, the last after %s (header read timeout %s; at most %d bytes sent)", len(headerCuts), ms(hSlow), headerReadTimeout, hBytes)
	fig.add("- slow bodies: %d connections sending a body byte a second; all cut off, the last after %s (body read timeout %s; at most %d bytes sent)", len(bodyCuts), ms(bSlow), bodyReadTimeout, bBytes)
	fig.add("- real clients meanwhile (%d, login then `me`, for %s): %d requests, %d errors, slowest login %s, slowest `me` %s", workers, time.Since(startedAt).Round(time.Second), total, errs, ms(tl.slowestOf("login")), ms(tl.slowestOf("me")))
}

// idleConnections opens thousands of connections that say nothing, or made one
// request and stay open, and checks that real clients are served as before.
func idleConnections(t *testing.T, s *stack, srv *proc, addr string, real *client, fig *figures) {
	const silent, keptAlive, workers = 1000, 2000, 4
	measure := func(prefix string) *tally {
		ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		tl, wait := realLoad(ctx, s, real, workers, prefix)
		<-ctx.Done()
		wait()
		return tl
	}
	before := measure("idle-before")

	var conns []net.Conn
	var mu sync.Mutex
	var failed atomic.Int64
	open := func(n int, speak bool) {
		work := make(chan struct{})
		var wg sync.WaitGroup
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range work {
					c, err := net.DialTimeout("tcp", addr, 5*time.Second)
					if err != nil {
						failed.Add(1)
						continue
					}
					if speak {
						// One request on a keep-alive connection, then silence.
						c.SetDeadline(time.Now().Add(10 * time.Second))
						io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: wxlogin\r\n\r\n")
						res, err := http.ReadResponse(bufio.NewReader(c), nil)
						if err != nil || res.StatusCode != 200 {
							failed.Add(1)
						} else {
							io.Copy(io.Discard, res.Body)
							res.Body.Close()
						}
						c.SetDeadline(time.Time{})
					}
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
				}
			}()
		}
		for range n {
			work <- struct{}{}
		}
		close(work)
		wg.Wait()
	}
	openStart := time.Now()
	open(keptAlive, true)
	open(silent, false)
	opened := time.Since(openStart)
	held := srv.health()
	during := measure("idle-during")
	for _, c := range conns {
		c.Close()
	}

	totalBefore, errsBefore := before.total()
	total, errs := during.total()
	if errs != 0 || failed.Load() != 0 {
		t.Errorf("with %d idle connections: real clients %s; %d idle connections failed to open", len(conns), during.byKind(), failed.Load())
	}
	if held.OpenFiles < keptAlive {
		t.Errorf("the server held %d files with %d kept-alive connections open: they were not all open at once", held.OpenFiles, keptAlive)
	}
	fig.add("")
	fig.add("- idle connections: %d that made one request and stay open (keep-alive) and %d that never send a byte, opened in %s; the server held %s", keptAlive, silent, opened.Round(time.Millisecond), held)
	fig.add("- real clients (%d, login then `me`, 5 s): without the idle connections %d requests, %d errors, slowest %s; with them %d requests, %d errors, slowest %s",
		workers, totalBefore, errsBefore, ms(slices.Max([]time.Duration{before.slowestOf("login"), before.slowestOf("me")})),
		total, errs, ms(slices.Max([]time.Duration{during.slowestOf("login"), during.slowestOf("me")})))
}
