package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/loteria-nacional/tp0/internal/testkit"
)

// proc is a child process whose output is kept and whose anonymous memory is
// sampled while it runs.
type proc struct {
	cmd       *exec.Cmd
	out       *testkit.Buffer
	firstLine string
	done      chan struct{}
	err       error
	peakAnon  int64 // KiB
}

// startProc starts path with args; with ready set, it returns once a line
// containing ready was printed.
func startProc(path string, env []string, ready string, args ...string) (*proc, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	p := &proc{cmd: cmd, out: &testkit.Buffer{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	readyCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.out, line)
			if ready != "" && strings.Contains(line, ready) {
				select {
				case readyCh <- line:
				default:
				}
			}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	go p.sample()
	if ready == "" {
		return p, nil
	}
	select {
	case p.firstLine = <-readyCh:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready: %v\n%s", path, p.err, p.tail())
	case <-time.After(30 * time.Second):
		p.kill()
		return nil, fmt.Errorf("%s not ready within 30s", path)
	}
}

// sample polls /proc/PID/status for RssAnon until the process exits.
func (p *proc) sample() {
	path := fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
					kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
					p.peakAnon = max(p.peakAnon, kb)
				}
			}
		}
		select {
		case <-p.done:
			return
		case <-tick.C:
		}
	}
}

func (p *proc) wait() error {
	<-p.done
	return p.err
}

// cpuTime is the running process's user+system time so far, read from
// /proc (0 where there is none), in clock ticks of 10 ms.
func (p *proc) cpuTime() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The fields after the command's name, which is in parentheses: utime
	// and stime are the 12th and 13th of them.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) tail() string {
	s := p.out.String()
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}

// usage returns the exited process's figures.
func (p *proc) usage(wall time.Duration) result {
	ps := p.cmd.ProcessState
	return result{wall: wall, peakAnon: p.peakAnon, peakRSS: maxRSS(ps), cpu: ps.UserTime() + ps.SystemTime()}
}
