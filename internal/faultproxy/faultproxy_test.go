package faultproxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/faultproxy"
)

// echo serves a line-echo server on loopback until the test ends.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func start(t *testing.T) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.Start(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

type client struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, p *faultproxy.Proxy) *client {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{Conn: c, r: bufio.NewReader(c)}
}

// roundTrip sends a line and reads the echo, waiting at most wait.
func (c *client) roundTrip(line string, wait time.Duration) (string, error) {
	c.SetDeadline(time.Now().Add(wait))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := c.r.ReadString('\n')
	return strings.TrimSuffix(got, "\n"), err
}

func timedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestPassForwardsBothWays(t *testing.T) {
	p := start(t)
	c := dial(t, p)
	for _, line := range []string{"hello", strings.Repeat("x", 100_000)} {
		if got, err := c.roundTrip(line, 5*time.Second); err != nil || got != line {
			t.Fatalf("round trip of %d bytes = %d bytes, %v", len(line), len(got), err)
		}
	}
	if s := p.Stats(); s.Accepted != 1 || s.Live != 1 {
		t.Errorf("stats = %+v, want 1 accepted and live", s)
	}
}

func TestDelayHoldsEachChunk(t *testing.T) {
	p := start(t)
	c := dial(t, p)
	p.Delay(150 * time.Millisecond)
	start := time.Now()
	if got, err := c.roundTrip("slow", 5*time.Second); err != nil || got != "slow" {
		t.Fatalf("round trip = %q, %v", got, err)
	}
	// One chunk each way: at least two delays.
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("round trip took %v through a 150ms delay each way, want at least 300ms", took)
	}
	p.Pass()
	if got, err := c.roundTrip("fast", 5*time.Second); err != nil || got != "fast" {
		t.Fatalf("after Pass: %q, %v", got, err)
	}
}

func TestStallHoldsBytesAndNewConnectionsUntilRestored(t *testing.T) {
	p := start(t)
	live := dial(t, p)
	if _, err := live.roundTrip("warm", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Stall()
	if _, err := live.roundTrip("held", 300*time.Millisecond); !timedOut(err) {
		t.Fatalf("a live connection answered through a stall: %v", err)
	}
	fresh := dial(t, p) // accepted, not connected upstream
	if _, err := fresh.roundTrip("new", 300*time.Millisecond); !timedOut(err) {
		t.Fatalf("a new connection answered through a stall: %v", err)
	}
	p.Restore()
	// Nothing was lost: the held line arrives, then the next one.
	live.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := live.r.ReadString('\n'); err != nil || got != "held\n" {
		t.Fatalf("after Restore the held line = %q, %v", got, err)
	}
	if got, err := live.roundTrip("after", 5*time.Second); err != nil || got != "after" {
		t.Fatalf("after Restore: %q, %v", got, err)
	}
	fresh.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := fresh.r.ReadString('\n'); err != nil || got != "new\n" {
		t.Fatalf("after Restore the new connection's line = %q, %v", got, err)
	}
}

func TestCutResetsLiveAndNewConnectionsUntilRestored(t *testing.T) {
	p := start(t)
	live := dial(t, p)
	if _, err := live.roundTrip("warm", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	if _, err := live.roundTrip("gone", 5*time.Second); err == nil || timedOut(err) {
		t.Fatalf("a live connection after Cut: %v, want it closed at once", err)
	}
	// A new connection is reset as soon as it is accepted: the dial itself may see it.
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		fresh := &client{Conn: c, r: bufio.NewReader(c)}
		if _, err := fresh.roundTrip("refused", 5*time.Second); err == nil || timedOut(err) {
			t.Fatalf("a new connection during Cut: %v, want it closed at once", err)
		}
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().Reset != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the proxy counts a reset just after making it
	}
	if s := p.Stats(); s.Reset != 2 {
		t.Errorf("stats = %+v, want 2 reset", s)
	}
	p.Restore()
	again := dial(t, p)
	if got, err := again.roundTrip("back", 5*time.Second); err != nil || got != "back" {
		t.Fatalf("after Restore: %q, %v", got, err)
	}
}

func TestCloseEndsEveryGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	target := echo(t)
	p, err := faultproxy.Start(target)
	if err != nil {
		t.Fatal(err)
	}
	// Connections in every state: pumping, stalled before connecting, delayed.
	for range 3 {
		c := dial(t, p)
		if _, err := c.roundTrip("x", 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	p.Delay(time.Hour)
	c := dial(t, p)
	io.WriteString(c, "held\n")
	p.Stall()
	dial(t, p)
	time.Sleep(50 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("the proxy still accepts after Close")
	}
	// The proxy's goroutines are gone once Close returns, and the echo server's
	// copies end with the upstream connections Close closed: only its accept loop
	// remains.
	deadline := time.Now().Add(5 * time.Second)
	for {
		extra := runtime.NumGoroutine() - before
		if extra <= 1 {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines more than before the proxy:\n%s", extra, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
