// Command bench is wxlogin's load harness (`make bench`). It builds the server, runs it on
// MariaDB with the fake WeChat on loopback, loads it, and prints each figure next to a
// baseline measured in the same run, as a ratio: absolute numbers on a shared machine
// drift, ratios hold. See docs/benchmarks.md for what each scenario means.
//
//	go run ./tools/bench [-d 5s] [-sessions 1000000] [-profile dir] [-only me,login,latency,growth,start]
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/wxlogin/wxlogin/internal/faultproxy"
	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

type options struct {
	dur, warmup time.Duration
	turns       int
	sessions    int
	profileDir  string
	only        map[string]bool
	mysqlHost   string
	dbName      string
	serverLog   string
	serverEnv   []string
	dbParams    string
	dbDelay     time.Duration
	logins      []int
	tidbHost    string
	tidbPID     int
}

func main() {
	var o options
	var only string
	flag.DurationVar(&o.dur, "d", 5*time.Second, "how long each measurement runs")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each measurement")
	flag.IntVar(&o.turns, "turns", 5, "compared loads take turns: each runs this many slices of -d/turns, one after the other, so that a machine that speeds up or slows down weighs on each alike")
	flag.IntVar(&o.sessions, "sessions", 1_000_000, "sessions in the table for the growth measurement")
	flag.StringVar(&o.profileDir, "profile", "", "write the server's CPU profiles ({ __typename } and me at 128 connections, first and returning logins at 64, one file per turn, e.g. me-128.1.pprof: go tool pprof reads them together; the three bursts' 3 s, burst.pprof) into this directory (created if missing)")
	flag.StringVar(&only, "only", "me,login,latency,growth,start", "scenarios to run")
	flag.StringVar(&o.mysqlHost, "mysql", "root@tcp(127.0.0.1:3306)", "MariaDB to run on (the harness creates and drops its own database)")
	flag.StringVar(&o.dbName, "db", "wxlogin_bench", "the database the harness creates")
	flag.StringVar(&o.serverLog, "server-log", "", "write the server's log here (default: discarded)")
	var serverEnv string
	flag.StringVar(&serverEnv, "server-env", "", "extra environment for the server, KEY=VALUE,… (GOGC=100 to compare the runtime's defaults; the harness's own settings win)")
	flag.DurationVar(&o.dbDelay, "db-delay", 0, "put a proxy between MariaDB and both the server and the baseline that holds each chunk this long, each way, as a network would (0: none)")
	var logins string
	flag.StringVar(&logins, "login-clients", "32,64", "the numbers of concurrent clients the login scenario runs at (1 with -db-delay: a login's round trips, one after the other)")
	flag.StringVar(&o.tidbHost, "tidb", "", "also run the me and login scenarios on this TiDB (user@tcp(host:port)), after MariaDB, in the same run; make bench-tidb starts one")
	flag.IntVar(&o.tidbPID, "tidb-pid", 0, "tidb-server's process, for its processor time (default: the first process named tidb-server*)")
	flag.StringVar(&o.dbParams, "db-params", "", "query parameters for the server's database URL (multiStatements=false sends a login's statements one by one)")
	flag.Parse()
	if o.turns < 1 {
		log.Fatal("bench: -turns must be at least 1")
	}
	for _, n := range strings.Split(logins, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || c < 1 {
			log.Fatalf("bench: -login-clients takes numbers of clients, 1 or more, separated by commas: %q", logins)
		}
		o.logins = append(o.logins, c)
	}
	if serverEnv != "" {
		o.serverEnv = strings.Split(serverEnv, ",")
	}
	o.only = map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		o.only[strings.TrimSpace(s)] = true
	}
	log.SetFlags(0)
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			log.Fatal("bench: ", err)
		}
	}
	if err := run(context.Background(), o); err != nil {
		log.Fatal("bench: ", err)
	}
}

// report collects the result lines; they are printed as they come and again, as one
// table, at the end.
type report struct {
	rows [][]string
	// engine names the database in each figure's row, once there is more than one.
	engine string
}

func (r *report) add(row ...string) {
	if r.engine != "" {
		row[0] = r.engine + ": " + row[0]
	}
	r.rows = append(r.rows, row)
	fmt.Println("  " + strings.Join(row, " | "))
}

func (r *report) print() {
	fmt.Println()
	fmt.Println("| figure | wxlogin | baseline | ratio | target |")
	fmt.Println("|---|---|---|---|---|")
	for _, row := range r.rows {
		fmt.Println("| " + strings.Join(row, " | ") + " |")
	}
}

func ratio(a, b float64) string { return fmt.Sprintf("%.2f×", a/b) }

func run(ctx context.Context, o options) error {
	tmp, err := os.MkdirTemp("", "wxlogin-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	machine()

	bin := filepath.Join(tmp, "wxlogin")
	fmt.Println("building the server…")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building: %w", err)
	}

	fake := fakewechat.New(fakewechat.Options{AppID: "wxbench000000001", Secret: "benchsecret"})
	defer fake.Close()
	fakeLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go (&http.Server{Handler: fake, ReadHeaderTimeout: 5 * time.Second}).Serve(fakeLn)

	key := make([]byte, 32)
	rand.Read(key)
	env := []string{
		"WECHAT_APPID=" + fake.AppID(), "WECHAT_SECRET=" + fake.Secret(),
		"WECHAT_API_BASE=http://" + fakeLn.Addr().String(),
		"WXLOGIN_SECRET_KEY=" + base64.StdEncoding.EncodeToString(key),
		"WXLOGIN_LOGIN_RATE_LIMIT=off", // every request comes from one address
	}
	// First: os/exec keeps the last of a repeated variable, so every setting the harness
	// makes wins over -server-env.
	env = append(slices.Clone(o.serverEnv), env...)
	var logTo io.Writer
	if o.serverLog != "" {
		f, err := os.Create(o.serverLog)
		if err != nil {
			return err
		}
		defer f.Close()
		logTo = f
	}
	rep := &report{}

	if o.only["start"] {
		if err := measureStart(ctx, bin, env, tmp, rep); err != nil {
			return err
		}
	}
	if !o.only["me"] && !o.only["login"] && !o.only["latency"] && !o.only["growth"] {
		rep.print()
		return nil
	}

	h := &harness{o: o, bin: bin, env: env, logTo: logTo, fake: fake, fakeBase: "http://" + fakeLn.Addr().String(), rep: rep}
	peak, err := h.onDatabase(ctx, "MariaDB", o.mysqlHost, mariadbPID(), o.only)
	if err != nil {
		return err
	}
	rep.add("peak RSS under every load above", fmt.Sprintf("%.1f MB", peak), "", "", "≤ 150 MB")
	if o.tidbHost != "" {
		rep.engine = "TiDB"
		pid := o.tidbPID
		if pid == 0 {
			pid = tidbPID()
		}
		if _, err := h.onDatabase(ctx, "TiDB", o.tidbHost, pid, map[string]bool{"me": o.only["me"], "login": o.only["login"]}); err != nil {
			return fmt.Errorf("on TiDB: %w", err)
		}
	}
	rep.print()
	return nil
}

// harness is what every database's pass shares: the server's binary and settings, the
// fake WeChat and the report.
type harness struct {
	o        options
	bin      string
	env      []string
	logTo    io.Writer
	fake     *fakewechat.Server
	fakeBase string
	rep      *report
}

// onDatabase runs the scenarios of only on the MySQL server at host (user@tcp(addr)),
// whose process is dbPID, and returns the server's peak RSS.
func (h *harness) onDatabase(ctx context.Context, engine, host string, dbPID int, only map[string]bool) (float64, error) {
	o, bin, env, logTo, rep := h.o, h.bin, h.env, h.logTo, h.rep
	fmt.Printf("\n== on %s\n", engine)
	admin, err := sql.Open("mysql", host+"/?parseTime=true&loc=UTC")
	if err != nil {
		return 0, err
	}
	defer admin.Close()
	for _, q := range []string{"DROP DATABASE IF EXISTS " + o.dbName, "CREATE DATABASE " + o.dbName} {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			return 0, fmt.Errorf("%s: %w", q, err)
		}
	}
	defer admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+o.dbName)
	user, host, _ := strings.Cut(host, "@")
	host = strings.TrimSuffix(strings.TrimPrefix(host, "tcp("), ")")
	if o.dbDelay > 0 {
		proxy, err := faultproxy.Start(host)
		if err != nil {
			return 0, err
		}
		defer proxy.Close()
		proxy.Delay(o.dbDelay)
		host = proxy.Addr()
		fmt.Printf("the server and the baseline reach %s through a proxy that adds %s each way\n", engine, o.dbDelay)
	}
	dbURL := "mysql://" + user + "@" + host + "/" + o.dbName
	if o.dbParams != "" {
		dbURL += "?" + o.dbParams
	}
	srv, err := startServer(ctx, bin, append(env, "WXLOGIN_DATABASE_URL="+dbURL), logTo)
	if err != nil {
		return 0, err
	}
	defer srv.stop()
	time.Sleep(time.Second)
	idle, _ := srv.rss()
	rep.add("idle RSS after start ("+engine+")", fmt.Sprintf("%.1f MB", idle), "", "", "")

	// The baseline connects as the server does: utf8mb4, arguments interpolated on the
	// client (one round trip per statement).
	db, err := sql.Open("mysql", user+"@tcp("+host+")/"+o.dbName+"?parseTime=true&loc=UTC&charset=utf8mb4&collation=utf8mb4_bin&interpolateParams=true")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	b := &bench{o: o, srv: srv, fake: h.fake, fakeBase: h.fakeBase, db: db, rep: rep, run: fmt.Sprint(time.Now().Unix() % 100000), dbPID: dbPID, engine: engine}

	// Every scenario after this one reads these sessions.
	fmt.Println("seeding 1,000 sessions through login…")
	if err := b.seedTokens(ctx, seededUsers); err != nil {
		return 0, err
	}
	if only["growth"] {
		// The growth figures are of the lookup itself, on servers without the session
		// cache: one on this database, which ends up holding a million sessions, and one
		// on a database of its own that keeps about a thousand, so that the two can take
		// turns as the other comparisons do.
		if b.uncached, err = startServer(ctx, bin, append(env, "WXLOGIN_DATABASE_URL="+dbURL, "WXLOGIN_SESSION_CACHE_TTL=0"), logTo); err != nil {
			return 0, err
		}
		defer b.uncached.stop()
		small := o.dbName + "_small"
		for _, q := range []string{"DROP DATABASE IF EXISTS " + small, "CREATE DATABASE " + small} {
			if _, err := admin.ExecContext(ctx, q); err != nil {
				return 0, fmt.Errorf("%s: %w", q, err)
			}
		}
		defer admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+small)
		smallURL := strings.Replace(dbURL, "/"+o.dbName, "/"+small, 1)
		if b.small, err = startServer(ctx, bin, append(env, "WXLOGIN_DATABASE_URL="+smallURL, "WXLOGIN_SESSION_CACHE_TTL=0"), logTo); err != nil {
			return 0, err
		}
		defer b.small.stop()
		c := newGQLClient(b.small.base, 32)
		var mu sync.Mutex
		s := burstLimited(ctx, seededUsers, 32, b.loginOp(c, "small", &b.smallTokens, &mu))
		c.close()
		if s.errs > 0 {
			return 0, fmt.Errorf("seeding the small database: %v", s.errKind)
		}
	}
	if only["me"] {
		if err := b.me(ctx); err != nil {
			return 0, err
		}
	}
	if only["login"] {
		if err := b.login(ctx); err != nil {
			return 0, err
		}
	}
	if only["latency"] {
		if err := b.latency(ctx); err != nil {
			return 0, err
		}
	}
	if only["growth"] {
		if err := b.growth(ctx); err != nil {
			return 0, err
		}
	}
	_, peak := srv.rss()
	return peak, nil
}

type bench struct {
	o    options
	srv  *server
	fake *fakewechat.Server
	// fakeBase is the fake WeChat's address, for the contract's floor (floorLogin).
	fakeBase string
	db       *sql.DB
	rep      *report
	run      string
	dbPID    int
	engine   string // the database's name in figures: MariaDB, TiDB
	tokens   []string
	// uncached is a second server without the session cache, for the growth figures;
	// small is one more, on a database of its own that keeps about a thousand sessions
	// (smallTokens).
	uncached    *server
	small       *server
	smallTokens []string
}

var (
	typenameBody = []byte(`{"query":"{ __typename }"}`)
	meBody       = mustDocument("Me", nil)
	// meIDBody asks for one field: the session lookup without most of the field work.
	meIDBody = []byte(`{"query":"{ me { id } }"}`)
)

// mustDocument reads a client document the SDK sends and wraps it as a request body.
func mustDocument(name string, vars map[string]any) []byte {
	doc, err := os.ReadFile(filepath.Join("clients", "documents", name+".graphql"))
	if err != nil {
		log.Fatalf("bench: run from the repository's root: %v", err)
	}
	body, _ := json.Marshal(map[string]any{"query": string(doc), "operationName": name, "variables": vars})
	return body
}

var loginDoc = func() string {
	var v struct{ Query string }
	json.Unmarshal(mustDocument("Login", nil), &v)
	return v.Query
}()

func loginBody(code string) []byte {
	body, _ := json.Marshal(map[string]any{"query": loginDoc, "operationName": "Login", "variables": map[string]string{"code": code}})
	return body
}

// loginOp logs in with a fresh dev code per operation: a new user each time, as on the
// morning of a campaign.
func (b *bench) loginOp(c *gqlClient, prefix string, tokens *[]string, mu *sync.Mutex) op {
	return func(ctx context.Context, _, i int) error {
		var out struct {
			Login struct{ Token string }
		}
		if err := c.post(ctx, loginBody(fmt.Sprintf("dev-%s%s-%d", prefix, b.run, i)), "", &out); err != nil {
			return err
		}
		if out.Login.Token == "" {
			return gqlError{"no token"}
		}
		if tokens != nil {
			mu.Lock()
			*tokens = append(*tokens, out.Login.Token)
			mu.Unlock()
		}
		return nil
	}
}

// seededUsers is how many users seeding logs in, and how many the returning logins
// take turns with.
const seededUsers = 1000

// returningName names the dev user of returning login i: one of seededUsers users of
// their own, logged in first by the login comparison, so that the sessions past the cap
// that returning logins end are never the seeded tokens the other scenarios use.
func (b *bench) returningName(i int) string {
	return fmt.Sprintf("again%s-%d", b.run, i%seededUsers)
}

// returningOp logs in one of those users again, with a fresh code from the fake
// WeChat: the everyday login of a person who has used the mini-program before.
func (b *bench) returningOp(c *gqlClient) op {
	return func(ctx context.Context, _, i int) error {
		name := b.returningName(i)
		code := b.fake.IssueCode(fakewechat.User{OpenID: fakewechat.OpenIDFor(b.fake.AppID(), name), UnionID: fakewechat.UnionIDFor(name)})
		var out struct {
			Login struct {
				Token     string
				IsNewUser bool
			}
		}
		if err := c.post(ctx, loginBody(code), "", &out); err != nil {
			return err
		}
		if out.Login.Token == "" || out.Login.IsNewUser {
			return gqlError{"no token, or a new user"}
		}
		return nil
	}
}

func (b *bench) seedTokens(ctx context.Context, n int) error {
	c := newGQLClient(b.srv.base, 32)
	defer c.close()
	var mu sync.Mutex
	s := burstLimited(ctx, n, 32, b.loginOp(c, "seed", &b.tokens, &mu))
	if s.errs > 0 {
		return fmt.Errorf("seeding: %v", s.errKind)
	}
	return nil
}

// burstLimited runs n operations on at most workers goroutines.
func burstLimited(ctx context.Context, n, workers int, do op) stats {
	sem := make(chan struct{}, workers)
	return burst(ctx, n, func(ctx context.Context, w, i int) error {
		sem <- struct{}{}
		defer func() { <-sem }()
		return do(ctx, w, i)
	})
}

// contender is one of the loads a comparison measures: its name, its operation, and the
// file for the server's CPU profile while it runs (none if empty).
type contender struct {
	name    string
	do      op
	profile string
	srv     *server // whose processor time to count, if not the comparison's
}

// compare measures loads on srv in turns: each turn gives every contender a slice of
// -d/-turns, after its own warm-up (the full -warmup on the first turn, a fifth of it
// on the others), so that drift in the machine's speed weighs on each alike. Each
// result sums its slices, processor time included. A contender's profile is taken in
// each of its slices, as name.1.pprof, name.2.pprof… (go tool pprof reads them together).
// A load compared with nothing runs for -d at once.
func (b *bench) compare(ctx context.Context, srv *server, conns int, cs []contender) []stats {
	turns := b.o.turns
	if len(cs) == 1 {
		turns = 1
	}
	slice := b.o.dur / time.Duration(turns)
	out := make([]stats, len(cs))
	cpus := make([]cpuSplit, len(cs))
	// An operation's number is unique to its contender across the turns: a login makes
	// its code from it, and a code used twice would be a replay.
	seqs := make([]atomic.Int64, len(cs))
	for turn := range turns {
		warmup := b.o.warmup
		if turn > 0 {
			warmup /= 5
		}
		for i, c := range cs {
			var wg sync.WaitGroup
			if c.profile != "" && b.o.profileDir != "" {
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(warmup)
					path := filepath.Join(b.o.profileDir, fmt.Sprintf("%s.%d.pprof", c.profile, turn+1))
					if err := srv.profile(path, slice); err != nil {
						log.Printf("profiling %s: %v", c.name, err)
					}
				}()
			}
			var before cpuSplit
			do := func(ctx context.Context, w, _ int) error { return c.do(ctx, w, int(seqs[i].Add(1))) }
			counted := srv
			if c.srv != nil {
				counted = c.srv
			}
			s := closedLoop(ctx, conns, warmup, slice, do, func(start bool) {
				now := takeCPU(counted.cmd.Process.Pid, b.dbPID)
				if start {
					before = now
				} else {
					cpus[i] = cpus[i].plus(now.since(before))
				}
			})
			wg.Wait()
			out[i] = out[i].plus(s)
		}
	}
	for i, c := range cs {
		s := out[i]
		fmt.Printf("    %-28s %s\n    %-28s %s\n", c.name, s, "", cpus[i].perOp(s.ops+s.errs))
	}
	return out
}

// me compares `me` with gqlgen's floor, `{ __typename }`, on the same server.
func (b *bench) me(ctx context.Context) error {
	fmt.Println("me against { __typename }…")
	for _, conns := range []int{32, 128} {
		c := newGQLClient(b.srv.base, conns)
		floorProf, prof := "", ""
		if conns == 128 {
			floorProf, prof = "typename-128", "me-128"
		}
		got := b.compare(ctx, b.srv, conns, []contender{
			{fmt.Sprintf("{ __typename } @%d", conns), func(ctx context.Context, _, _ int) error {
				return c.post(ctx, typenameBody, "", nil)
			}, floorProf, nil},
			{fmt.Sprintf("me @%d", conns), func(ctx context.Context, w, _ int) error {
				return c.post(ctx, meBody, b.tokens[w%len(b.tokens)], nil)
			}, prof, nil},
			{fmt.Sprintf("me { id } @%d", conns), func(ctx context.Context, w, _ int) error {
				return c.post(ctx, meIDBody, b.tokens[w%len(b.tokens)], nil)
			}, "", nil},
			{fmt.Sprintf("/auth/verify @%d", conns), func(ctx context.Context, w, _ int) error {
				return c.verify(ctx, b.tokens[w%len(b.tokens)])
			}, "", nil},
		})
		floor, me, meID, verified := got[0], got[1], got[2], got[3]
		c.close()
		b.rep.add(fmt.Sprintf("me { id } (one field, for reference), %d connections: requests/s", conns), fmt.Sprintf("%.0f", meID.rate()), fmt.Sprintf("%.0f ({ __typename })", floor.rate()), ratio(meID.rate(), floor.rate()), "")
		b.rep.add(fmt.Sprintf("me, %d connections: requests/s", conns), fmt.Sprintf("%.0f", me.rate()), fmt.Sprintf("%.0f ({ __typename })", floor.rate()), ratio(me.rate(), floor.rate()), "≥ 0.65×")
		b.rep.add(fmt.Sprintf("me, %d connections: p50 / p99", conns), ms(me.pct(.5))+" / "+ms(me.pct(.99)), ms(floor.pct(.5))+" / "+ms(floor.pct(.99)), "", "")
		// A gateway's check of a token shares me's session lookup: it should cost
		// about what the one-field me costs.
		b.rep.add(fmt.Sprintf("forward auth (/auth/verify), %d connections: requests/s", conns), fmt.Sprintf("%.0f", verified.rate()), fmt.Sprintf("%.0f (me { id })", meID.rate()), ratio(verified.rate(), meID.rate()), "≥ 0.90×")
		if me.errs+meID.errs+floor.errs+verified.errs > 0 {
			return fmt.Errorf("errors: me %v, me { id } %v, typename %v, verify %v", me.errKind, meID.errKind, floor.errKind, verified.errKind)
		}
	}
	return nil
}

// login compares logins through the server (zero-latency fake WeChat) with the same
// writes made with plain database/sql.
func (b *bench) login(ctx context.Context) error {
	fmt.Println("login against plain database/sql…")
	// The plain returning logins log in users of their own, made by plain first logins,
	// so that neither side ends the other's sessions past the cap.
	b.db.SetMaxOpenConns(32)
	known := &plainLogin{db: b.db, appid: b.fake.AppID(), run: b.run + "-known"}
	if s := burstLimited(ctx, seededUsers, 32, known.login); s.errs > 0 {
		return fmt.Errorf("seeding plain users: %v", s.errKind)
	}
	// The server's returning logins, likewise, log in users first logged in here.
	c := newGQLClient(b.srv.base, 32)
	s := burstLimited(ctx, seededUsers, 32, b.loginOp(c, "again", nil, nil))
	c.close()
	if s.errs > 0 {
		return fmt.Errorf("seeding returning users: %v", s.errKind)
	}
	for _, conns := range b.o.logins {
		b.db.SetMaxOpenConns(conns)
		b.db.SetMaxIdleConns(conns)
		plain := &plainLogin{db: b.db, appid: b.fake.AppID(), run: fmt.Sprintf("%s-%d", b.run, conns)}
		c := newGQLClient(b.srv.base, conns)
		prof := ""
		if conns == 64 {
			prof = "login-64"
		}
		wc := newWeChatClient(b.fakeBase, b.fake, conns)
		claimed := &floorLogin{plain: plain, prefix: "claimed"}
		floor := &floorLogin{plain: plain, weChat: wc, prefix: "floor"}
		all := b.compare(ctx, b.srv, conns, []contender{
			{fmt.Sprintf("plain database/sql @%d", conns), plain.login, "", nil},
			{fmt.Sprintf("login @%d", conns), b.loginOp(c, fmt.Sprintf("z%d", conns), nil, nil), prof, nil},
			{fmt.Sprintf("plain, returning @%d", conns), func(ctx context.Context, _, i int) error {
				return plain.relogin(ctx, known.openid(i%seededUsers), i)
			}, "", nil},
			{fmt.Sprintf("login, returning @%d", conns), b.returningOp(c), strings.Replace(prof, "login", "returning", 1), nil},
			{fmt.Sprintf("plain + claim @%d", conns), claimed.login, "", nil},
			{fmt.Sprintf("plain + claim + WeChat @%d", conns), floor.login, "", nil},
		})
		base, got, baseAgain, again, baseClaimed, baseFloor := all[0], all[1], all[2], all[3], all[4], all[5]
		c.close()
		wc.close()
		b.rep.add(fmt.Sprintf("login, %d clients: logins/s", conns), fmt.Sprintf("%.0f", got.rate()), fmt.Sprintf("%.0f (plain database/sql)", base.rate()), ratio(got.rate(), base.rate()), loginTarget(conns))
		b.rep.add(fmt.Sprintf("login, %d clients: p50 / p99", conns), ms(got.pct(.5))+" / "+ms(got.pct(.99)), ms(base.pct(.5))+" / "+ms(base.pct(.99)), "", "")
		b.rep.add(fmt.Sprintf("the contract's floor (for reference), %d clients: plain + claim; + WeChat", conns), fmt.Sprintf("%.0f; %.0f", baseClaimed.rate(), baseFloor.rate()), fmt.Sprintf("%.0f (plain database/sql)", base.rate()), ratio(baseClaimed.rate(), base.rate())+"; "+ratio(baseFloor.rate(), base.rate()), "")
		b.rep.add(fmt.Sprintf("login against the contract's floor, %d clients", conns), fmt.Sprintf("%.0f", got.rate()), fmt.Sprintf("%.0f (plain + claim + WeChat)", baseFloor.rate()), ratio(got.rate(), baseFloor.rate()), "")
		b.rep.add(fmt.Sprintf("returning login, %d clients: logins/s", conns), fmt.Sprintf("%.0f", again.rate()), fmt.Sprintf("%.0f (plain database/sql)", baseAgain.rate()), ratio(again.rate(), baseAgain.rate()), loginTarget(conns))
		if n := got.errs + base.errs + again.errs + baseAgain.errs + baseClaimed.errs + baseFloor.errs; n > 0 {
			return fmt.Errorf("errors: login %v, plain %v, returning %v, plain returning %v, plain + claim %v, plain + claim + WeChat %v",
				got.errKind, base.errKind, again.errKind, baseAgain.errKind, baseClaimed.errKind, baseFloor.errKind)
		}
	}
	return nil
}

// latency starts 1,000 logins at once against a fake WeChat that takes 200 ms to answer,
// and watches the server's goroutines and database connections meanwhile.
func (b *bench) latency(ctx context.Context) error {
	const n = 1000
	fmt.Println("1,000 logins at once, WeChat answering in 200 ms…")
	b.fake.SetLatency(200 * time.Millisecond)
	defer b.fake.SetLatency(0)
	goroutinesBefore, _ := b.srv.gauge("go_goroutines")
	// The floor: the same 1,000 first logins' writes with plain database/sql, each after
	// a 200 ms wait, on a pool as large as the server's.
	b.db.SetMaxOpenConns(32)
	b.db.SetMaxIdleConns(32)
	plain := &plainLogin{db: b.db, appid: b.fake.AppID(), run: b.run + "-burst"}
	cpuBefore := takeCPU(b.srv.cmd.Process.Pid, b.dbPID)
	floor := burst(ctx, n, func(ctx context.Context, w, i int) error {
		time.Sleep(200 * time.Millisecond)
		return plain.login(ctx, w, i)
	})
	floorCPU := takeCPU(b.srv.cmd.Process.Pid, b.dbPID).since(cpuBefore)
	fmt.Printf("    plain database/sql after 200 ms: %s; %s\n", floor, floorCPU.total(floor.took))
	// The three rounds come one after the other, in about three seconds: one profile
	// takes them all.
	var profiled sync.WaitGroup
	if b.o.profileDir != "" {
		profiled.Go(func() {
			if err := b.srv.profile(filepath.Join(b.o.profileDir, "burst.pprof"), 3*time.Second); err != nil {
				log.Printf("profiling the bursts: %v", err)
			}
		})
	}
	defer profiled.Wait()
	for round := 1; round <= 3; round++ {
		c := newGQLClient(b.srv.base, n)
		var peakG, peakConns float64
		done := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				if g, err := b.srv.gauge("go_goroutines"); err == nil {
					peakG = max(peakG, g)
				}
				if oc, err := b.srv.gauge("go_sql_open_connections"); err == nil {
					peakConns = max(peakConns, oc)
				}
				select {
				case <-done:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
		cpuBefore := takeCPU(b.srv.cmd.Process.Pid, b.dbPID)
		s := burst(ctx, n, b.loginOp(c, fmt.Sprintf("w%d", round), nil, nil))
		cpu := takeCPU(b.srv.cmd.Process.Pid, b.dbPID).since(cpuBefore)
		close(done)
		<-sampled
		c.close()
		fmt.Printf("    round %d: %s; peak goroutines %.0f, peak database connections %.0f\n", round, s, peakG, peakConns)
		b.rep.add(fmt.Sprintf("1,000 logins at once, WeChat 200 ms, round %d: p50 / p99 / max", round),
			ms(s.pct(.5))+" / "+ms(s.pct(.99))+" / "+ms(s.pct(1)),
			ms(floor.pct(.5))+" / "+ms(floor.pct(.99))+" / "+ms(floor.pct(1))+" (plain database/sql after 200 ms)",
			ratio(float64(s.pct(.99)), float64(floor.pct(.99)))+" (p99)", "p99 ≤ 250 ms")
		b.rep.add(fmt.Sprintf("  round %d: processor time, server / %s / harness (clients and fake WeChat)", round, b.engine), cpu.total(s.took), floorCPU.total(floor.took)+" (plain)", "", "")
		b.rep.add(fmt.Sprintf("  round %d: errors, peak goroutines, peak database connections", round),
			fmt.Sprintf("%d %v, %.0f, %.0f", s.errs, s.errKind, peakG, peakConns), fmt.Sprintf("%.0f goroutines idle", goroutinesBefore), "", "0 errors, bounded")
	}
	time.Sleep(2 * time.Second)
	after, _ := b.srv.gauge("go_goroutines")
	b.rep.add("goroutines 2 s after the bursts", fmt.Sprintf("%.0f", after), fmt.Sprintf("%.0f before", goroutinesBefore), "", "back to idle")
	return nil
}

// growth measures `me` at 32 connections on the servers without the session cache, in
// turns: on this database once its sessions table holds -sessions rows (seeded in bulk),
// and on the small one, which holds about a thousand.
func (b *bench) growth(ctx context.Context) error {
	var have int
	if err := b.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM sessions").Scan(&have); err != nil {
		return err
	}
	if want := b.o.sessions - have; want > 0 {
		fmt.Printf("seeding %d sessions in bulk…\n", want)
		start := time.Now()
		if err := seedSessions(ctx, b.db, want); err != nil {
			return err
		}
		fmt.Printf("    seeded in %s\n", time.Since(start).Round(time.Second))
	}
	count := func(db string) (n int) {
		b.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+db+".sessions").Scan(&n)
		return n
	}
	bigCount, smallCount := count(b.o.dbName), count(b.o.dbName+"_small")
	bigC, smallC := newGQLClient(b.uncached.base, 32), newGQLClient(b.small.base, 32)
	defer bigC.close()
	defer smallC.close()
	got := b.compare(ctx, b.uncached, 32, []contender{
		{name: fmt.Sprintf("me @32 uncached, %d sessions", smallCount), srv: b.small, do: func(ctx context.Context, w, _ int) error {
			return smallC.post(ctx, meBody, b.smallTokens[w%len(b.smallTokens)], nil)
		}},
		{name: fmt.Sprintf("me @32 uncached, %d sessions", bigCount), do: func(ctx context.Context, w, _ int) error {
			return bigC.post(ctx, meBody, b.tokens[w%len(b.tokens)], nil)
		}},
	})
	small, big := got[0], got[1]
	if small.errs+big.errs > 0 {
		return fmt.Errorf("errors: %v, %v", small.errKind, big.errKind)
	}
	b.rep.add(fmt.Sprintf("me p50, 32 connections, no session cache: %d sessions", bigCount), ms(big.pct(.5)), fmt.Sprintf("%s (%d sessions)", ms(small.pct(.5)), smallCount), ratio(float64(big.pct(.5)), float64(small.pct(.5))), "≤ 1.20×")
	return nil
}

// seedSessions adds n live sessions spread over the users already there, in chunks, with
// MariaDB's sequence engine generating the rows.
func seedSessions(ctx context.Context, db *sql.DB, n int) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	stmts := []string{
		"CREATE TEMPORARY TABLE seed_owner (n INT PRIMARY KEY, user_id CHAR(36), identity_id CHAR(36))",
		"INSERT INTO seed_owner SELECT ROW_NUMBER() OVER (ORDER BY id) - 1, user_id, id FROM identities LIMIT 1000",
	}
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	var owners int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM seed_owner").Scan(&owners); err != nil {
		return err
	}
	const chunk = 100_000
	for from := 0; from < n; from += chunk {
		to := min(from+chunk, n)
		q := fmt.Sprintf(`INSERT INTO sessions (id, token_hash, user_id, identity_id, created_at, last_seen_at, expires_at, ip, user_agent)
			SELECT UUID(), UNHEX(SHA2(CONCAT('bench-seed-', seq, '-', RAND()), 256)), o.user_id, o.identity_id,
			       NOW(6), NOW(6), NOW(6) + INTERVAL 30 DAY, '127.0.0.1', 'bench seed'
			FROM seq_%d_to_%d JOIN seed_owner o ON o.n = seq %% %d`, from+1, to, owners)
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("seeding sessions: %w", err)
		}
	}
	return nil
}

// measureStart times process start to the first answered request on SQLite: on a new
// file (the schema is created) and on an existing one (a restart), five times each.
func measureStart(ctx context.Context, bin string, env []string, tmp string, rep *report) error {
	fmt.Println("start to first answer on SQLite…")
	dbPath := filepath.Join(tmp, "start.db")
	for _, kind := range []string{"new database file", "existing database file"} {
		var runs []time.Duration
		var idle float64
		for i := range 5 {
			if kind == "new database file" {
				for _, suffix := range []string{"", "-wal", "-shm"} {
					os.Remove(dbPath + suffix)
				}
			}
			took, rss, err := startOnce(ctx, bin, append(env, "WXLOGIN_DATABASE_URL=sqlite://"+dbPath))
			if err != nil {
				return fmt.Errorf("start %d: %w", i, err)
			}
			runs = append(runs, took)
			idle = rss
		}
		slices.Sort(runs)
		fmt.Printf("    %s: %v\n", kind, runs)
		rep.add("start to first answer, SQLite, "+kind+" (median of 5)", ms(runs[2]), "", "", "≤ 300 ms")
		if kind == "existing database file" {
			rep.add("idle RSS after start (SQLite)", fmt.Sprintf("%.1f MB", idle), "", "", "")
		}
	}
	return nil
}

// startOnce starts the server on a free port, asks { __typename } every millisecond
// until it answers, and stops it.
func startOnce(ctx context.Context, bin string, env []string) (time.Duration, float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, append(env, "WXLOGIN_ADDR="+addr)...)
	c := newGQLClient("http://"+addr, 1)
	defer c.close()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	for time.Since(start) < 30*time.Second {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.post(rctx, typenameBody, "", nil)
		cancel()
		if err == nil {
			took := time.Since(start)
			time.Sleep(500 * time.Millisecond)
			kb, _ := procStatus(cmd.Process.Pid, "VmRSS")
			return took, float64(kb) / 1024, nil
		}
		time.Sleep(time.Millisecond)
	}
	return 0, 0, fmt.Errorf("no answer within 30 s")
}

// machine prints what the figures were measured on.
func machine() {
	model := "unknown CPU"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	fmt.Printf("machine: %d CPUs (%s), %s, %s/%s\n", runtime.NumCPU(), model, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// loginTarget is what a login should reach against the plain transaction: at least as
// many at 64 clients, where sharing statements pays; 0.70× at fewer.
func loginTarget(conns int) string {
	if conns >= 64 {
		return "≥ 1.00×"
	}
	return "≥ 0.70×"
}
