package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// stats is what one measurement saw: how many operations finished in how long, how many
// failed and why, and the latency of each.
type stats struct {
	ops     int
	errs    int
	errKind map[string]int
	took    time.Duration
	lat     []time.Duration // sorted
}

func (s stats) rate() float64 { return float64(s.ops) / s.took.Seconds() }

func (s stats) pct(p float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	i := int(float64(len(s.lat))*p+0.5) - 1
	return s.lat[max(0, min(i, len(s.lat)-1))]
}

func (s stats) String() string {
	return fmt.Sprintf("%d ops in %s: %.0f/s p50 %s p99 %s errors %d %v",
		s.ops, s.took.Round(time.Millisecond), s.rate(), ms(s.pct(0.50)), ms(s.pct(0.99)), s.errs, s.errKind)
}

// plus is s and t taken together, as one measurement.
func (s stats) plus(t stats) stats {
	u := stats{ops: s.ops + t.ops, errs: s.errs + t.errs, took: s.took + t.took, errKind: map[string]int{}}
	for _, m := range []map[string]int{s.errKind, t.errKind} {
		for k, v := range m {
			u.errKind[k] += v
		}
	}
	u.lat = append(slices.Clone(s.lat), t.lat...)
	slices.Sort(u.lat)
	return u
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

// op is one operation of a worker; i counts the worker's operations. An error is counted
// under its string.
type op func(ctx context.Context, worker, i int) error

// closedLoop runs workers that each perform op back to back: first for warmup, unmeasured,
// then for d. It returns once every worker has finished its last operation.
// mark, if not nil, is called as the measured part starts (true) and ends (false).
func closedLoop(ctx context.Context, workers int, warmup, d time.Duration, do op, mark func(start bool)) stats {
	var measuring atomic.Bool
	stop := make(chan struct{})
	type local struct {
		lat  []time.Duration
		errs map[string]int
	}
	locals := make([]local, workers)
	var wg sync.WaitGroup
	var seq atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := &locals[w]
			l.errs = map[string]int{}
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := int(seq.Add(1))
				counted := measuring.Load()
				start := time.Now()
				err := do(ctx, w, i)
				took := time.Since(start)
				if !counted || !measuring.Load() {
					continue
				}
				if err != nil {
					l.errs[err.Error()]++
					continue
				}
				l.lat = append(l.lat, took)
			}
		}()
	}
	time.Sleep(warmup)
	if mark != nil {
		mark(true)
	}
	measuring.Store(true)
	start := time.Now()
	time.Sleep(d)
	measuring.Store(false)
	took := time.Since(start)
	if mark != nil {
		mark(false)
	}
	close(stop)
	wg.Wait()
	return merge(took, func(yield func([]time.Duration, map[string]int)) {
		for _, l := range locals {
			yield(l.lat, l.errs)
		}
	})
}

// burst starts n operations at once, each on its own goroutine, and waits for all.
func burst(ctx context.Context, n int, do op) stats {
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			start := time.Now()
			errs[w] = do(ctx, w, w)
			lat[w] = time.Since(start)
		}()
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	took := time.Since(start)
	return merge(took, func(yield func([]time.Duration, map[string]int)) {
		for w := range n {
			if errs[w] != nil {
				yield(nil, map[string]int{errs[w].Error(): 1})
				continue
			}
			yield(lat[w:w+1], nil)
		}
	})
}

func merge(took time.Duration, parts func(yield func([]time.Duration, map[string]int))) stats {
	s := stats{took: took, errKind: map[string]int{}}
	parts(func(lat []time.Duration, errs map[string]int) {
		s.lat = append(s.lat, lat...)
		for k, v := range errs {
			s.errKind[k] += v
			s.errs += v
		}
	})
	s.ops = len(s.lat)
	slices.Sort(s.lat)
	return s
}

// gqlClient posts GraphQL documents to one server over keep-alive connections, as many
// as there are workers.
type gqlClient struct {
	url string
	hc  *http.Client
}

func newGQLClient(base string, conns int) *gqlClient {
	t := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     time.Minute,
	}
	return &gqlClient{url: base + "/graphql", hc: &http.Client{Transport: t, Timeout: 30 * time.Second}}
}

func (c *gqlClient) close() { c.hc.CloseIdleConnections() }

// verify asks the server's forward auth (/auth/verify) about token, as a gateway does:
// anything but a 200 with the user's header is an error.
func (c *gqlClient) verify(ctx context.Context, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.url, "/graphql")+"/auth/verify", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := c.hc.Do(req)
	if err != nil {
		return gqlError{"transport: " + shortErr(err)}
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("X-Wxlogin-User-Id") == "" {
		return gqlError{fmt.Sprintf("verify: HTTP %d", res.StatusCode)}
	}
	return nil
}

// gqlError is an answer that was not a clean 200 with data; its string is what the
// harness counts errors by.
type gqlError struct{ kind string }

func (e gqlError) Error() string { return e.kind }

// post sends body with the bearer token (if any) and decodes the answer's data into out
// (if not nil). Any GraphQL error is an error, named by its code.
func (c *gqlClient) post(ctx context.Context, body []byte, token string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/graphql-response+json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return gqlError{"transport: " + shortErr(err)}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return gqlError{"reading: " + shortErr(err)}
	}
	// A clean answer to a request whose data is not wanted is checked without decoding
	// it: the server writes it as {"data":…} with no errors entry (the text of a me or
	// { __typename } answer holds no such key). Anything else is decoded, to name the
	// error. The harness's processor time, which the server shares, stays small.
	if out == nil && res.StatusCode == http.StatusOK && bytes.HasPrefix(raw, []byte(`{"data":{`)) && !bytes.Contains(raw, []byte(`"errors"`)) {
		return nil
	}
	var answer struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Extensions struct {
				Code string `json:"code"`
			} `json:"extensions"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		return gqlError{fmt.Sprintf("HTTP %d, not JSON", res.StatusCode)}
	}
	if len(answer.Errors) > 0 {
		return gqlError{fmt.Sprintf("HTTP %d %s", res.StatusCode, answer.Errors[0].Extensions.Code)}
	}
	if res.StatusCode != http.StatusOK {
		return gqlError{fmt.Sprintf("HTTP %d", res.StatusCode)}
	}
	if out != nil {
		return json.Unmarshal(answer.Data, out)
	}
	return nil
}

// shortErr drops the URL from a transport error, so that errors of one kind count as one.
func shortErr(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}
