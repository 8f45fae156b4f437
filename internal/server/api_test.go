package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/graph"
	"github.com/wxlogin/wxlogin/internal/testdb"
)

func TestExplorationSwitches(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		for _, on := range []bool{true, false} {
			t.Run(map[bool]string{true: "on (dev mode)", false: "off (default outside dev mode)"}[on], func(t *testing.T) {
				e := newEnv(t, b, func(e *env) {
					e.api = graph.Options{Introspection: on, Suggestions: on}
					e.playground = on
				})
				r := e.post(0, "", `{ __schema { queryType { name } } }`, nil)
				if got := r.Code() == ""; got != on {
					t.Errorf("introspection answered = %v (%v), want %v", got, r.Errors, on)
				}
				// Off, introspection is the client's mistake, said plainly: not INTERNAL,
				// and no ERROR line to alert on.
				if !on && (r.Code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "Introspection is off on this server")) {
					t.Errorf("introspection while off: %q %v, want BAD_USER_INPUT saying it is off", r.Code(), r.Errors)
				}
				if !on && strings.Contains(e.logs.String(), `"level":"ERROR"`) {
					t.Errorf("introspection while off logged an ERROR:\n%s", e.logs)
				}
				// Every kind of hint gqlparser gives: a field, an argument, a fragment's
				// type, an input field.
				for _, doc := range []string{
					`{ mee { id } }`,
					`mutation { logoutAll(keepCurent: true) }`,
					`{ ...F } fragment F on Quer { __typename }`,
					`mutation { updateProfile(input: {nicknam: "x"}) { id } }`,
				} {
					r = e.post(0, "", doc, nil)
					if len(r.Errors) == 0 || strings.Contains(r.Errors[0].Message, "Did you mean") != on {
						t.Errorf("%s: %v, want a suggestion: %v", doc, r.Errors, on)
					}
				}
				resp, err := e.client.Get(e.instances[0].URL + "/")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if want := map[bool]int{true: 200, false: 404}[on]; resp.StatusCode != want {
					t.Errorf("playground = %d, want %d", resp.StatusCode, want)
				}
			})
		}
	})
}

func TestCORS(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		const allowed, foreign = "https://admin.example.com", "https://evil.example.com"
		e := newEnv(t, b, func(e *env) { e.cors = []string{allowed} })
		preflight := func(origin string) *http.Response {
			req := mustRequest(t, http.MethodOptions, e.instances[0].URL+"/graphql", "", "")
			req.Header.Set("Origin", origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
			resp, err := e.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}
		ok := preflight(allowed)
		if ok.StatusCode != http.StatusNoContent || ok.Header.Get("Access-Control-Allow-Origin") != allowed ||
			!strings.Contains(ok.Header.Get("Access-Control-Allow-Headers"), "Authorization") ||
			!strings.Contains(ok.Header.Get("Access-Control-Allow-Methods"), "POST") {
			t.Errorf("preflight from an allowed origin = %d %v", ok.StatusCode, ok.Header)
		}
		bad := preflight(foreign)
		if bad.StatusCode != http.StatusForbidden || bad.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from a foreign origin = %d, Allow-Origin %q; want 403 and none", bad.StatusCode, bad.Header.Get("Access-Control-Allow-Origin"))
		}
		for origin, want := range map[string]string{allowed: allowed, foreign: ""} {
			req := newGraphQLRequest(e, `{ me { id } }`)
			req.Header.Set("Origin", origin)
			r := e.send(req)
			if got := r.Header.Get("Access-Control-Allow-Origin"); got != want {
				t.Errorf("request from %s: Allow-Origin %q, want %q", origin, got, want)
			}
			if want != "" && !strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
				t.Errorf("request id not exposed to %s", origin)
			}
		}
		// A body announced past the limit gets its 413 with the CORS headers, so the
		// allowed page can read the error.
		big := mustRequest(t, http.MethodPost, e.instances[0].URL+"/graphql", "application/json", `{"query": "{ me { id } }", "variables": {"pad": "`+strings.Repeat("x", 2<<20)+`"}}`)
		big.Header.Set("Origin", allowed)
		if r := e.send(big); r.Status != http.StatusRequestEntityTooLarge || r.Header.Get("Access-Control-Allow-Origin") != allowed || r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("2 MiB body from an allowed origin = %d, Allow-Origin %q, Cache-Control %q", r.Status, r.Header.Get("Access-Control-Allow-Origin"), r.Header.Get("Cache-Control"))
		}

		// With no origins configured (the default), no origin is allowed.
		closed := newEnv(t, b)
		req := mustRequest(t, http.MethodOptions, closed.instances[0].URL+"/graphql", "", "")
		req.Header.Set("Origin", allowed)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, _ := closed.client.Do(req)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("preflight with no origins configured = %d, want 403", resp.StatusCode)
		}
	})
}
