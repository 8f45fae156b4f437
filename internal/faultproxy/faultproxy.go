// Package faultproxy is a TCP proxy for tests that puts network faults between a
// client and its server: it listens on loopback, forwards every connection to one
// target, and can be switched at any moment to delay each chunk, to stall (accept
// and hold, forward nothing), or to cut (reset every live connection and every new
// one), and back. The reliability suite puts one between wxlogin and MariaDB, so that
// an outage of the database is one process's alone and the shared server is untouched.
package faultproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is what the proxy does to the bytes it carries.
type Mode int

const (
	// Pass forwards everything at once.
	Pass Mode = iota
	// Delay holds each chunk, in each direction, for the proxy's delay before
	// forwarding it.
	Delay
	// Stall accepts connections and reads what arrives but forwards nothing, and
	// connects new clients to nothing, until the mode changes; no byte is lost.
	Stall
	// Cut resets every live connection and every new one at once.
	Cut
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Delay:
		return "delay"
	case Stall:
		return "stall"
	case Cut:
		return "cut"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Stats counts what the proxy has done since it started.
type Stats struct {
	Accepted int64 // connections accepted from clients
	Reset    int64 // connections reset by a cut (live ones and refused new ones)
	Live     int   // connections open now
}

// Proxy forwards TCP connections from its loopback address to a target. It is safe
// for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string
	dial   net.Dialer

	mu      sync.Mutex
	mode    Mode
	delay   time.Duration
	changed chan struct{} // closed, and replaced, whenever the mode changes
	links   map[*link]struct{}
	closed  bool

	wg       sync.WaitGroup
	accepted atomic.Int64
	reset    atomic.Int64
}

// link is one client connection and, once the proxy has connected it, its upstream.
type link struct {
	client net.Conn
	done   chan struct{} // closed when the link ends

	mu       sync.Mutex
	upstream net.Conn // nil until connected
	ended    bool
}

// Start listens on a free loopback port and forwards to target (host:port).
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		ln:      ln,
		target:  target,
		dial:    net.Dialer{Timeout: 5 * time.Second},
		changed: make(chan struct{}),
		links:   make(map[*link]struct{}),
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients connect to, as host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Mode is the proxy's mode now.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Pass forwards everything at once from now on, releasing what a stall or a delay
// held. Restore is the same.
func (p *Proxy) Pass() { p.set(Pass, 0) }

// Restore ends any fault: it is Pass.
func (p *Proxy) Restore() { p.Pass() }

// Delay holds each chunk for d before forwarding it, in both directions.
func (p *Proxy) Delay(d time.Duration) { p.set(Delay, d) }

// Stall holds every byte and every new connection until the mode changes.
func (p *Proxy) Stall() { p.set(Stall, 0) }

// Cut resets every live connection, and every new one until the mode changes.
func (p *Proxy) Cut() {
	p.set(Cut, 0)
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		if l.close(true) {
			p.reset.Add(1)
		}
	}
}

func (p *Proxy) set(m Mode, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode, p.delay = m, d
	close(p.changed)
	p.changed = make(chan struct{})
}

// current is the mode, its delay, and a channel closed when either changes.
func (p *Proxy) current() (Mode, time.Duration, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.delay, p.changed
}

// Stats reports the counts so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	live := len(p.links)
	p.mu.Unlock()
	return Stats{Accepted: p.accepted.Load(), Reset: p.reset.Load(), Live: live}
}

// Close stops listening, closes every connection and returns once every goroutine
// of the proxy has ended.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	close(p.changed) // wakes stalled and delayed pumps; they find the link closed
	p.changed = make(chan struct{})
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.close(false)
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. out of file descriptors: try again
			continue
		}
		p.accepted.Add(1)
		l := &link{client: c, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.links[l] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(l)
	}
}

// serve connects a new client upstream (once the mode lets it) and pumps both ways
// until either side ends or a cut or Close ends the link.
func (p *Proxy) serve(l *link) {
	defer p.wg.Done()
	defer p.forget(l)
	if !p.admit(l) {
		return
	}
	up, err := p.dial.Dial("tcp", p.target)
	if err != nil {
		l.close(false)
		return
	}
	if !l.connect(up) {
		return
	}
	var pumps sync.WaitGroup
	pumps.Add(2)
	go func() { defer pumps.Done(); p.pump(l, l.client, up) }()
	go func() { defer pumps.Done(); p.pump(l, up, l.client) }()
	pumps.Wait()
}

// admit waits while the proxy stalls, and reports whether the new link may be
// connected upstream: not when it is cut, nor once the link has ended.
func (p *Proxy) admit(l *link) bool {
	for {
		mode, _, changed := p.current()
		switch mode {
		case Cut:
			if l.close(true) {
				p.reset.Add(1)
			}
			return false
		case Stall:
			select {
			case <-changed:
			case <-l.done:
				return false
			}
		default:
			return true
		}
	}
}

// pump copies src to dst chunk by chunk, applying the mode to each chunk; when
// either side fails it closes the whole link.
func (p *Proxy) pump(l *link, src, dst net.Conn) {
	defer l.close(false)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.hold(l) {
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// hold applies the mode to one chunk about to be forwarded: it returns at once in
// Pass, after the delay in Delay, once the mode changes in Stall. It reports false
// when the link ended meanwhile.
func (p *Proxy) hold(l *link) bool {
	for {
		mode, delay, changed := p.current()
		switch mode {
		case Pass:
			return true
		case Cut:
			return false
		case Delay:
			t := time.NewTimer(delay)
			select {
			case <-t.C:
				return true
			case <-changed:
				t.Stop() // the mode changed mid-delay: apply the new one
			case <-l.done:
				t.Stop()
				return false
			}
		case Stall:
			select {
			case <-changed:
			case <-l.done:
				return false
			}
		}
	}
}

// connect records the link's upstream connection; when the link has ended meanwhile
// it closes up instead and reports false.
func (l *link) connect(up net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		up.Close()
		return false
	}
	l.upstream = up
	return true
}

// close ends the link, once: both connections close, which ends both pumps. With
// reset the client gets a TCP reset rather than an orderly end, as when a network
// path fails. It reports whether this call ended the link.
func (l *link) close(reset bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return false
	}
	l.ended = true
	if tc, ok := l.client.(*net.TCPConn); ok && reset {
		tc.SetLinger(0)
	}
	l.client.Close()
	if l.upstream != nil {
		l.upstream.Close()
	}
	close(l.done)
	return true
}

func (p *Proxy) forget(l *link) {
	l.close(false)
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}
