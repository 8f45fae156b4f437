package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// server is one running wxlogin process.
type server struct {
	cmd      *exec.Cmd
	base     string // http://127.0.0.1:port
	debug    string // the profiler's address
	exited   chan error
	peakRSS  int64 // kB, sampled
	rssMu    sync.Mutex
	stopSamp chan struct{}
}

// startServer runs the binary with env added to a clean environment and waits until its
// log names the address it listens on.
func startServer(ctx context.Context, bin string, env []string, logTo io.Writer) (*server, error) {
	cmd := exec.CommandContext(ctx, bin)
	// The harness's own settings last: os/exec keeps the last of a repeated variable.
	cmd.Env = append(slices.Clone(env), "PATH="+os.Getenv("PATH"), "WXLOGIN_ADDR=127.0.0.1:0", "WXLOGIN_DEBUG_ADDR=127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = logTo
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, exited: make(chan error, 1), stopSamp: make(chan struct{})}
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		announced := false
		for sc.Scan() {
			line := sc.Bytes()
			if !announced {
				var l struct {
					Msg    string `json:"msg"`
					Listen string `json:"listen"`
					Addr   string `json:"addr"`
				}
				if json.Unmarshal(line, &l) == nil {
					switch l.Msg {
					case "profiler serving":
						s.debug = l.Addr
					case "wxlogin serving":
						s.base = "http://" + l.Listen
						announced = true
						close(found)
					}
				}
			}
			if logTo != nil {
				logTo.Write(append(line, '\n'))
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() { s.exited <- cmd.Wait() }()
	select {
	case <-found:
	case err := <-s.exited:
		return nil, fmt.Errorf("the server exited before serving: %v", err)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		return nil, errors.New("the server did not announce its address within 60 s")
	}
	go s.sampleRSS()
	return s, nil
}

// sampleRSS keeps the largest resident set seen, every 50 ms.
func (s *server) sampleRSS() {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stopSamp:
			return
		case <-t.C:
		}
		if kb, err := procStatus(s.cmd.Process.Pid, "VmRSS"); err == nil {
			s.rssMu.Lock()
			s.peakRSS = max(s.peakRSS, kb)
			s.rssMu.Unlock()
		}
	}
}

// rss returns the resident set now and the peak seen so far (the kernel's high-water
// mark), in MB.
func (s *server) rss() (now, peak float64) {
	cur, _ := procStatus(s.cmd.Process.Pid, "VmRSS")
	hwm, _ := procStatus(s.cmd.Process.Pid, "VmHWM")
	return float64(cur) / 1024, float64(hwm) / 1024
}

func (s *server) stop() {
	close(s.stopSamp)
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
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

// gauge reads one figure from the server's /metrics: the first series of that name.
func (s *server) gauge(name string) (float64, error) {
	res, err := http.Get(s.base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "{")) {
			return strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		}
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}

// profile records the server's CPU for d into path (go tool pprof reads it).
func (s *server) profile(path string, d time.Duration) error {
	if s.debug == "" {
		return errors.New("the server serves no profiler")
	}
	res, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.debug, int(d.Seconds())))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cpuTime is the processor time a process has used so far (user and system).
func cpuTime(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count fields after it.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}

// mariadbPID finds the database server's process, to account for its processor time.
func mariadbPID() int { return pidNamed("mariadbd", "mysqld") }

// tidbPID finds tidb-server's process (make bench-tidb's is named
// tidb-server-<pin>, which the kernel cuts to 15 characters).
func tidbPID() int { return pidNamed("tidb-server") }

// pidNamed is the first process whose name starts with one of names; 0 without one.
func pidNamed(names ...string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			continue
		}
		for _, name := range names {
			if strings.HasPrefix(strings.TrimSpace(string(comm)), name) {
				return pid
			}
		}
	}
	return 0
}

// cpuSplit is the processor time the server, the database and the harness spent.
type cpuSplit struct{ server, db, harness time.Duration }

func takeCPU(serverPID, dbPID int) cpuSplit {
	return cpuSplit{server: cpuTime(serverPID), db: cpuTime(dbPID), harness: cpuTime(os.Getpid())}
}

func (c cpuSplit) since(before cpuSplit) cpuSplit {
	return cpuSplit{c.server - before.server, c.db - before.db, c.harness - before.harness}
}

func (c cpuSplit) plus(d cpuSplit) cpuSplit {
	return cpuSplit{c.server + d.server, c.db + d.db, c.harness + d.harness}
}

// total is the processor time of a load that took the wall-clock time took: each
// party's, and the sum spread over the machine's processors, the least time in which
// the machine could have done that work.
func (c cpuSplit) total(took time.Duration) string {
	all := c.server + c.db + c.harness
	return fmt.Sprintf("%s / %s / %s; %s over %d processors, in %s", ms(c.server), ms(c.db), ms(c.harness),
		ms(all/time.Duration(runtime.NumCPU())), runtime.NumCPU(), ms(took))
}

// perOp is the processor time per operation, in microseconds, of each party.
func (c cpuSplit) perOp(ops int) string {
	if ops == 0 {
		return ""
	}
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(ops) }
	return fmt.Sprintf("CPU/op: server %.0fµs, database %.0fµs, harness %.0fµs", us(c.server), us(c.db), us(c.harness))
}
