//go:build reliability

package reliability

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/faultproxy"
	"github.com/wxlogin/wxlogin/internal/testdb"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// The contract's bounds the scenarios check answers against.
const (
	requestDeadline = 15 * time.Second // README, Limits: 15 s per request
	loginBound      = 10 * time.Second // contract: a login answers within 10 s whatever WeChat does
	// answerSlack is what a loaded two-core machine may add between the server's
	// answer and the client reading it.
	answerSlack = 2 * time.Second
)

// binary is the server, built once for the whole run by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rl-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "wxlogin")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Dir = repoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the server:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot is the module's root: this package is internal/reliability.
func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Join(wd, "..", "..")
}

// stack is what one scenario runs against: its own MariaDB database, the fake WeChat
// on loopback, and the fault proxy in front of the database. Servers started from it
// share all three.
type stack struct {
	t      *testing.T
	fake   *fakewechat.Server
	wxBase string
	proxy  *faultproxy.Proxy
	dbURL  string  // through the proxy, for the servers
	direct *sql.DB // straight to MariaDB, for the test's own checks
	key    string
}

// newStack creates a database (dropped when the test ends), the fake WeChat and the
// proxy. Without MariaDB the test is skipped, except under CI=true, where it fails.
func newStack(t *testing.T) *stack {
	t.Helper()
	var mysqlURL func(testing.TB) string
	for _, b := range testdb.Backends(t) { // fails the test under CI=true without MySQL
		if b.Name == "mysql" {
			mysqlURL = b.URL
		}
	}
	if mysqlURL == nil {
		t.Skip("the reliability suite needs MariaDB; it is not reachable")
	}
	raw := mysqlURL(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	driver, dsn, _, err := database.DSN(raw)
	if err != nil {
		t.Fatal(err)
	}
	// The test's own checks run without the server's 3 s statement bound: after a long
	// soak they read millions of rows.
	if cfg, err := mysql.ParseDSN(dsn); err == nil {
		cfg.ReadTimeout, cfg.WriteTimeout = 0, 0
		dsn = cfg.FormatDSN()
	}
	direct, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { direct.Close() })

	proxy, err := faultproxy.Start(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	u.Host = proxy.Addr()

	fake := fakewechat.New(fakewechat.Options{AppID: "wxreliability001", Secret: "reliabilitysecret"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Idle keep-alive connections end after a second, so that a goroutine count taken
	// after a pause holds none of the server's idle connections to WeChat, only what
	// it really keeps.
	hs := &http.Server{Handler: fake, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() { fake.Close(); hs.Close() })

	key := make([]byte, 32)
	rand.Read(key)
	return &stack{
		t: t, fake: fake, wxBase: "http://" + ln.Addr().String(), proxy: proxy,
		dbURL: u.String(), direct: direct, key: base64.StdEncoding.EncodeToString(key),
	}
}

// count runs a COUNT query on the database directly.
func (s *stack) count(query string) int {
	s.t.Helper()
	var n int
	if err := s.direct.QueryRow(query).Scan(&n); err != nil {
		s.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// proc is one running server process.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:port
	pid    int
	log    *logTail
	exited chan struct{}
	err    error // how it exited, once exited is closed
}

// start runs a server on the stack and waits until it announces its address. It is
// stopped (SIGTERM) when the test ends, unless the test has already ended it.
func (s *stack) start(name string, env ...string) *proc {
	t := s.t
	t.Helper()
	cmd := exec.Command(binary)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"WXLOGIN_ADDR=127.0.0.1:0",
		"WXLOGIN_DATABASE_URL=" + s.dbURL,
		"WXLOGIN_SECRET_KEY=" + s.key,
		"WECHAT_APPID=" + s.fake.AppID(),
		"WECHAT_SECRET=" + s.fake.Secret(),
		"WECHAT_API_BASE=" + s.wxBase,
		"WXLOGIN_LOGIN_RATE_LIMIT=off", // every client is on 127.0.0.1
	}, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, cmd: cmd, pid: cmd.Process.Pid, log: newLogTail(), exited: make(chan struct{})}
	announced := make(chan string, 1)
	go p.log.read(stderr, announced)
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	select {
	case addr := <-announced:
		p.base = "http://" + addr
	case <-p.exited:
		t.Fatalf("server %s exited before serving: %v\n%s", name, p.err, p.log.dump())
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("server %s did not announce its address within 60 s\n%s", name, p.log.dump())
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("last lines of server %s's log:\n%s", name, p.log.dump())
		}
		if n := p.log.panics(); n > 0 {
			t.Errorf("server %s logged %d panics", name, n)
		}
	})
	return p
}

// stop sends SIGTERM and waits for the drain; a server that takes over 30 s is killed
// and the test fails.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			p.t.Errorf("server %s exited with %v after SIGTERM, want 0", p.name, p.err)
		}
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		p.t.Errorf("server %s did not drain within 30 s of SIGTERM", p.name)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

// logTail reads a server's JSON log: it counts lines by level and message, keeps the
// last lines for a failing test, and finds the listen address.
type logTail struct {
	mu     sync.Mutex
	last   []string
	counts map[string]int // "LEVEL msg"
	// errors keeps the first ERROR lines whole, so that a run's failures explain
	// themselves after the last lines have scrolled past.
	errors []string
	panic  int
}

// keptErrors bounds logTail.errors.
const keptErrors = 20

func newLogTail() *logTail { return &logTail{counts: map[string]int{}} }

func (l *logTail) read(r io.Reader, announced chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var entry struct {
			Level  string `json:"level"`
			Msg    string `json:"msg"`
			Listen string `json:"listen"`
		}
		l.mu.Lock()
		if json.Unmarshal([]byte(line), &entry) == nil {
			if entry.Level != "INFO" && entry.Level != "DEBUG" {
				l.counts[entry.Level+" "+entry.Msg]++
			}
			if entry.Level == "ERROR" && len(l.errors) < keptErrors {
				l.errors = append(l.errors, line)
			}
			if entry.Msg == "wxlogin serving" && announced != nil {
				announced <- entry.Listen
				announced = nil
			}
		} else if strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") {
			l.panic++
		}
		if strings.Contains(line, "panic") && strings.Contains(line, `"level":"ERROR"`) {
			l.panic++
		}
		if entry.Msg == "request" && entry.Level == "INFO" {
			l.mu.Unlock()
			continue // access lines: too many to keep, and the tallies have them
		}
		l.last = append(l.last, line)
		if len(l.last) > 60 {
			l.last = l.last[len(l.last)-60:]
		}
		l.mu.Unlock()
	}
}

func (l *logTail) dump() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.last, "\n")
}

func (l *logTail) panics() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.panic
}

// warnings lists the WARN and ERROR lines counted by message, most frequent first,
// then the first ERROR lines whole.
func (l *logTail) warnings() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := countsString(l.counts)
	for _, line := range l.errors {
		s += "\n  - `" + line + "`"
	}
	return s
}

// health is a server's vital signs at one moment.
type health struct {
	Goroutines int
	SQLOpen    int // open database connections
	RSSMB      float64
	OpenFiles  int
}

func (h health) String() string {
	return fmt.Sprintf("goroutines %d, DB connections %d, RSS %.1f MB, open files %d", h.Goroutines, h.SQLOpen, h.RSSMB, h.OpenFiles)
}

// health samples the server: /metrics for goroutines and the pool, /proc for memory
// and files.
func (p *proc) health() health {
	p.t.Helper()
	m, err := p.metrics()
	if err != nil {
		p.t.Fatalf("server %s: /metrics: %v", p.name, err)
	}
	rss, _ := procStatus(p.pid, "VmRSS")
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.pid))
	return health{
		Goroutines: int(m["go_goroutines"]),
		SQLOpen:    int(m["go_sql_open_connections"]),
		RSSMB:      float64(rss) / 1024,
		OpenFiles:  len(fds),
	}
}

// metrics reads the first series of each metric name from /metrics.
func (p *proc) metrics() (map[string]float64, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	res, err := hc.Get(p.base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name := line[:strings.IndexAny(line, " {")]
		if _, ok := out[name]; ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// goroutineSlack is how many goroutines more than before a load a server may keep once
// it is over (timers, idle keep-alive connections closing).
const goroutineSlack = 10

// grewFrom says whether h holds more goroutines than before did, by more than
// goroutineSlack, not counting one per open database connection: the MySQL driver
// keeps a goroutine for each, and the pool, bounded at 32, grows and shrinks with the
// load (first logins that arrive together share connections; a fault that fails them
// one by one takes more).
func (h health) grewFrom(before health) bool {
	return h.Goroutines-h.SQLOpen > before.Goroutines-before.SQLOpen+goroutineSlack
}

// settle waits up to d for the server's goroutines to come back down to before's (as
// grewFrom counts them), and returns the last health seen.
func (p *proc) settle(before health, d time.Duration) health {
	deadline := time.Now().Add(d)
	for {
		h := p.health()
		if !h.grewFrom(before) || time.Now().After(deadline) {
			return h
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// procStatus reads one kB figure of /proc/<pid>/status.
func procStatus(pid int, field string) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// peaks samples a server's health every interval until stopped, keeping the highest
// figures.
type peaks struct {
	stopc chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	max   health
}

func (p *proc) watch(interval time.Duration) *peaks {
	pk := &peaks{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(pk.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if m, err := p.metrics(); err == nil {
				rss, _ := procStatus(p.pid, "VmRSS")
				fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.pid))
				pk.mu.Lock()
				pk.max.Goroutines = max(pk.max.Goroutines, int(m["go_goroutines"]))
				pk.max.SQLOpen = max(pk.max.SQLOpen, int(m["go_sql_open_connections"]))
				pk.max.RSSMB = max(pk.max.RSSMB, float64(rss)/1024)
				pk.max.OpenFiles = max(pk.max.OpenFiles, len(fds))
				pk.mu.Unlock()
			}
			select {
			case <-pk.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return pk
}

func (pk *peaks) stop() health {
	close(pk.stopc)
	<-pk.done
	pk.mu.Lock()
	defer pk.mu.Unlock()
	return pk.max
}

// client posts GraphQL to one server.
type client struct {
	base string
	hc   *http.Client
}

func newClient(base string, conns int) *client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
	}
	// Past the server's own deadline: a hang shows as a timeout here, never as a stuck test.
	return &client{base: base, hc: &http.Client{Transport: tr, Timeout: requestDeadline + 15*time.Second}}
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// answer is what one GraphQL request got.
type answer struct {
	Status  int
	Code    string // the first error's extensions.code; "" without errors
	Data    map[string]json.RawMessage
	GraphQL bool // the body was a GraphQL response
	Err     error
	Took    time.Duration
}

// kind names the outcome for tallies: "ok", the error code, or what went wrong at
// the HTTP level.
func (a answer) kind() string {
	switch {
	case a.Err != nil:
		return "transport error: " + shortErr(a.Err)
	case !a.GraphQL:
		return fmt.Sprintf("HTTP %d without a GraphQL body", a.Status)
	case a.Code != "":
		return a.Code
	case a.Status != http.StatusOK:
		return fmt.Sprintf("HTTP %d", a.Status)
	}
	return "ok"
}

func (a answer) ok() bool { return a.kind() == "ok" }

func shortErr(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 { // "dial tcp 127.0.0.1:1234: connect: connection refused"
		s = s[i+2:]
	}
	return s
}

// post sends one GraphQL request.
func (c *client) post(ctx context.Context, query string, vars map[string]any, token string) answer {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/graphql", bytes.NewReader(body))
	if err != nil {
		return answer{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	res, err := c.hc.Do(req)
	if err != nil {
		return answer{Err: err, Took: time.Since(start)}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	a := answer{Status: res.StatusCode, Took: time.Since(start)}
	if err != nil {
		a.Err = err
		return a
	}
	var gql struct {
		Data   map[string]json.RawMessage `json:"data"`
		Errors []struct {
			Extensions struct {
				Code string `json:"code"`
			} `json:"extensions"`
		} `json:"errors"`
	}
	if json.Unmarshal(raw, &gql) == nil && (gql.Data != nil || len(gql.Errors) > 0) {
		a.GraphQL = true
		a.Data = gql.Data
		if len(gql.Errors) > 0 {
			a.Code = gql.Errors[0].Extensions.Code
			if a.Code == "" {
				a.Code = "(no code)"
			}
		}
	}
	return a
}

const (
	loginDoc    = `mutation Login($code: String!) { login(code: $code) { token isNewUser user { id openid } } }`
	meDoc       = `query Me { me { id openid } }`
	logoutDoc   = `mutation Logout { logout }`
	sessionsDoc = `query Sessions { sessions { id current } }`
)

// login logs in with code; token and openid are empty unless it succeeded.
func (c *client) login(ctx context.Context, code string) (token, openid string, a answer) {
	a = c.post(ctx, loginDoc, map[string]any{"code": code}, "")
	if !a.ok() {
		return "", "", a
	}
	var p struct {
		Token string
		User  struct{ Openid string }
	}
	if err := json.Unmarshal(a.Data["login"], &p); err != nil || p.Token == "" {
		a.Code = "(login without a token)"
		return "", "", a
	}
	return p.Token, p.User.Openid, a
}

// me asks who the token belongs to.
func (c *client) me(ctx context.Context, token string) (openid string, a answer) {
	a = c.post(ctx, meDoc, nil, token)
	if !a.ok() {
		return "", a
	}
	var u struct{ Openid string }
	json.Unmarshal(a.Data["me"], &u)
	return u.Openid, a
}

// ready reports /readyz's status (0 when it did not answer).
func (c *client) ready() int {
	res, err := c.hc.Get(c.base + "/readyz")
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// user is a WeChat user of the load, with its own openid and unionid.
func user(name string) fakewechat.User {
	return fakewechat.User{OpenID: "o-rl-" + name, UnionID: "u-rl-" + name}
}

// tally counts outcomes by operation and kind, and keeps the slowest answer of each
// operation. With keep set it also keeps every answer, in order, for timelines.
type tally struct {
	mu      sync.Mutex
	counts  map[string]int // "op kind"
	slowest map[string]time.Duration
	keep    bool
	events  []event
}

type event struct {
	Op    string
	Start time.Time
	End   time.Time
	Kind  string
}

func newTally(keep bool) *tally {
	return &tally{counts: map[string]int{}, slowest: map[string]time.Duration{}, keep: keep}
}

func (t *tally) add(op string, start time.Time, a answer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := a.kind()
	t.counts[op+" "+k]++
	t.slowest[op] = max(t.slowest[op], a.Took)
	if t.keep {
		t.events = append(t.events, event{Op: op, Start: start, End: start.Add(a.Took), Kind: k})
	}
}

func (t *tally) total() (n, errs int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, v := range t.counts {
		n += v
		if !strings.HasSuffix(k, " ok") {
			errs += v
		}
	}
	return n, errs
}

// byKind is the counts as "op kind: n, …".
func (t *tally) byKind() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return countsString(t.counts)
}

func (t *tally) slowestOf(op string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.slowest[op]
}

func (t *tally) snapshot() []event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.events)
}

func countsString(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// tokens collects the tokens logins answered with, to check later that each still
// works.
type tokens struct {
	mu   sync.Mutex
	list []issued
}

type issued struct {
	token, openid, by string
	at                time.Time
}

func (ts *tokens) add(token, openid, by string) {
	ts.mu.Lock()
	ts.list = append(ts.list, issued{token: token, openid: openid, by: by, at: time.Now()})
	ts.mu.Unlock()
}

func (ts *tokens) all() []issued {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.list)
}

// verifyTokens checks that every token resolves with me, on c, to the openid its login
// gave. It returns how many it checked and how many failed.
func verifyTokens(t *testing.T, c *client, list []issued) (checked, failed int) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	work := make(chan issued)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				openid, a := c.me(ctx, it.token)
				if !a.ok() || openid != it.openid {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("token from %s at %s: me = %q, %s", it.by, it.at.Format("15:04:05.000"), openid, a.kind()))
					mu.Unlock()
				}
			}
		}()
	}
	for _, it := range list {
		work <- it
	}
	close(work)
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("%d of %d tokens no longer resolve with me; first ones:\n  %s", len(bad), len(list), strings.Join(bad[:min(10, len(bad))], "\n  "))
	}
	return len(list), len(bad)
}

// consistency checks that the database holds no half-written login and no duplicated
// user: every user has its one identity (one mini-program), every identity and session
// its user, every session its audit row written in the same transaction, and every
// code recorded as done its user. (Audit rows outlive their sessions, which
// housekeeping purges once ended.) It returns the number of users.
func (s *stack) consistency() int {
	t := s.t
	t.Helper()
	checks := []struct{ what, query string }{
		{"users without an identity", `SELECT COUNT(*) FROM users u WHERE NOT EXISTS (SELECT 1 FROM identities i WHERE i.user_id = u.id)`},
		{"users with more than one identity", `SELECT COUNT(*) FROM (SELECT user_id FROM identities GROUP BY user_id HAVING COUNT(*) > 1) d`},
		{"openids with more than one identity", `SELECT COUNT(*) FROM (SELECT openid FROM identities GROUP BY appid, openid HAVING COUNT(*) > 1) d`},
		{"identities without a user", `SELECT COUNT(*) FROM identities i WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = i.user_id)`},
		{"sessions without a user or identity", `SELECT COUNT(*) FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id) OR NOT EXISTS (SELECT 1 FROM identities i WHERE i.id = s.identity_id)`},
		{"sessions without their login's audit row", `SELECT COUNT(*) FROM sessions s WHERE s.id NOT IN (SELECT a.session_id FROM audit_events a WHERE a.event = 'login_succeeded' AND a.session_id IS NOT NULL)`},
		{"codes done without their user", `SELECT COUNT(*) FROM login_codes c WHERE c.state = 'done' AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = c.user_id)`},
	}
	for _, c := range checks {
		if n := s.count(c.query); n != 0 {
			t.Errorf("%d %s", n, c.what)
		}
	}
	return s.count(`SELECT COUNT(*) FROM users`)
}

// run runs worker(ctx, w) on n goroutines until ctx ends, and waits for them.
func run(ctx context.Context, n int, worker func(ctx context.Context, w int)) (wait func()) {
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker(ctx, w)
		}()
	}
	return wg.Wait
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// figures collects what a scenario saw, logs it, and writes it to
// test-artifacts/reliability/<name>.md when the test ends.
type figures struct {
	t     *testing.T
	name  string
	lines []string
}

func newFigures(t *testing.T, name, title string) *figures {
	f := &figures{t: t, name: name, lines: []string{"# " + title, "", "Run " + time.Now().UTC().Format(time.RFC3339) + ", " + machine(), ""}}
	t.Cleanup(f.write)
	return f
}

// add appends a line (markdown) and logs it.
func (f *figures) add(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	f.t.Log(line)
	f.lines = append(f.lines, line)
}

func (f *figures) write() {
	status := "passed"
	if f.t.Failed() {
		status = "FAILED"
	}
	f.lines = append(f.lines, "", "Test "+status+".")
	dir := filepath.Join(repoRoot(), "test-artifacts", "reliability")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Log(err)
		return
	}
	path := filepath.Join(dir, f.name+".md")
	if err := os.WriteFile(path, []byte(strings.Join(f.lines, "\n")+"\n"), 0o644); err != nil {
		f.t.Log(err)
		return
	}
	f.t.Logf("figures written to %s", path)
}

// machine describes where the figures were taken.
func machine() string {
	cpus := 0
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		cpus = strings.Count(string(raw), "\nprocessor") + 1
	}
	load := ""
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(raw))[:3], " ")
	}
	return fmt.Sprintf("%d CPUs, load average %s", cpus, load)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }
