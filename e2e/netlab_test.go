package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// A netLab is a network the test makes itself: a hub namespace with a
// bridge, and one namespace per member (a node or an agency) joined to it
// by a veth pair, its address on that link only (nothing is added to the
// host's interfaces). Faults are iptables rules and tc qdiscs inside a
// member's namespace. Every namespace, and with it every interface and
// rule, is removed when the test ends, passed or failed; a lab left by a
// killed test run is removed by the next run.
type netLab struct {
	t       *testing.T
	prefix  string         // tp0e2e-<pid>-<n>-
	members map[string]int // member → host number on the bridge (10.88.0.N)
}

// labPrefix starts every namespace this package makes.
const labPrefix = "tp0e2e-"

var labSeq atomic.Int64

// needNetLab skips t with one line where namespaces or iptables cannot be
// used (not root, a command missing); with TP0_REQUIRE_NETNS=1 (CI) it
// fails instead.
func needNetLab(t *testing.T) {
	t.Helper()
	why := ""
	switch {
	case runtime.GOOS != "linux":
		why = "network namespaces are Linux's"
	case os.Geteuid() != 0:
		why = "needs root for network namespaces and iptables"
	default:
		for _, c := range []string{"ip", "iptables", "tc"} {
			if _, err := exec.LookPath(c); err != nil {
				why = fmt.Sprintf("needs %s (apt-get install iproute2 iptables)", c)
				break
			}
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("TP0_REQUIRE_NETNS") == "1" {
		t.Fatalf("%s; TP0_REQUIRE_NETNS=1 requires them", why)
	}
	t.Skipf("network fault tests skipped: %s", why)
}

// newNetLab makes the hub and its bridge; members are added with add.
func newNetLab(t *testing.T) *netLab {
	t.Helper()
	needNetLab(t)
	removeStaleLabs()
	l := &netLab{t: t, prefix: fmt.Sprintf("%s%d-%d-", labPrefix, os.Getpid(), labSeq.Add(1)), members: map[string]int{}}
	// Registered first, so it runs last: after every process the test
	// started in these namespaces was killed.
	t.Cleanup(func() {
		for m := range l.members {
			exec.Command("ip", "netns", "del", l.ns(m)).Run()
		}
		exec.Command("ip", "netns", "del", l.ns("hub")).Run()
	})
	if out, err := exec.Command("ip", "netns", "add", l.ns("hub")).CombinedOutput(); err != nil {
		if os.Getenv("TP0_REQUIRE_NETNS") == "1" {
			t.Fatalf("ip netns add: %v: %s", err, out)
		}
		t.Skipf("network fault tests skipped: ip netns add: %v: %s", err, strings.TrimSpace(string(out)))
	}
	l.in("hub", "ip", "link", "add", "br0", "type", "bridge")
	l.in("hub", "ip", "link", "set", "br0", "up")
	return l
}

// removeStaleLabs deletes the namespaces of test runs that are gone.
func removeStaleLabs() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, labPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || syscall.Kill(pid, 0) == nil || pid == os.Getpid() {
			continue
		}
		exec.Command("ip", "netns", "del", name).Run()
	}
}

func (l *netLab) ns(member string) string { return l.prefix + member }

// add makes member's namespace, linked to the bridge, with address
// 10.88.0.host, and returns the address.
func (l *netLab) add(member string, host int) string {
	l.t.Helper()
	if out, err := exec.Command("ip", "netns", "add", l.ns(member)).CombinedOutput(); err != nil {
		l.t.Fatalf("ip netns add %s: %v: %s", l.ns(member), err, out)
	}
	l.members[member] = host
	veth := fmt.Sprintf("v%d", host)
	l.in("hub", "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", l.ns(member))
	l.in("hub", "ip", "link", "set", veth, "master", "br0", "up")
	addr := fmt.Sprintf("10.88.0.%d", host)
	l.in(member, "ip", "addr", "add", addr+"/24", "dev", "eth0")
	l.in(member, "ip", "link", "set", "eth0", "up")
	l.in(member, "ip", "link", "set", "lo", "up")
	return addr
}

// addr is member's address.
func (l *netLab) addr(member string) string { return fmt.Sprintf("10.88.0.%d", l.members[member]) }

// wrap is the command prefix that runs a program in member's namespace.
func (l *netLab) wrap(member string) []string { return []string{"ip", "netns", "exec", l.ns(member)} }

// in runs a command in member's namespace ("hub": the bridge's) and fails
// the test if it fails.
func (l *netLab) in(member string, args ...string) {
	l.t.Helper()
	argv := append(l.wrap(member), args...)
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		l.t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
}

// iptables adds rules in member's namespace, each a list of arguments
// after -A (-w: rules of parallel tests wait for the lock).
func (l *netLab) iptables(member string, rules ...string) {
	l.t.Helper()
	for _, r := range rules {
		l.in(member, append([]string{"iptables", "-w", "-A"}, strings.Fields(r)...)...)
	}
}

// cut drops every packet between member and each of others, both ways, in
// member's namespace.
func (l *netLab) cut(member string, others ...string) {
	l.t.Helper()
	for _, o := range others {
		l.iptables(member, "INPUT -s "+l.addr(o)+" -j DROP", "OUTPUT -d "+l.addr(o)+" -j DROP")
	}
}

// heal removes member's rules and qdiscs.
func (l *netLab) heal(member string) {
	l.t.Helper()
	l.in(member, "iptables", "-w", "-F")
	exec.Command("ip", "netns", "exec", l.ns(member), "tc", "qdisc", "del", "dev", "eth0", "root").Run() // none: fine
}

// dialer dials from inside member's namespace: the socket is made on an OS
// thread moved into it, which then ends with its goroutine (a locked
// goroutine that returns takes its thread with it), so no other goroutine
// ever runs in that namespace.
func (l *netLab) dialer(member string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	path := "/run/netns/" + l.ns(member)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		done := make(chan result, 1)
		go func() {
			runtime.LockOSThread() // never unlocked, on purpose
			f, err := os.Open(path)
			if err != nil {
				done <- result{nil, err}
				return
			}
			defer f.Close()
			if err := setns(f.Fd()); err != nil {
				done <- result{nil, fmt.Errorf("setns %s: %w", path, err)}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			done <- result{c, err}
		}()
		select {
		case r := <-done:
			return r.c, r.err
		case <-ctx.Done():
			go func() {
				if r := <-done; r.c != nil {
					r.c.Close()
				}
			}()
			return nil, ctx.Err()
		}
	}
}
