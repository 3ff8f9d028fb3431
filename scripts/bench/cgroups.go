package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgroups are CPU cgroups made for one bench run, each with a quota of a
// share of a core: each node in one of its own, as on a machine of its
// own, and the agencies (this process's goroutines) in theirs. cgroup v1's
// cpu controller (cpu.cfs_quota_us under /sys/fs/cgroup/cpu) or v2's
// cpu.max, whichever the machine has.
type cgroups struct {
	root string // this run's parent group
	v2   bool
	home string // where this process was, to go back to
}

// agencyGroup holds the bench process while its agencies run.
const agencyGroup = "agencies"

// cfsPeriod is every group's accounting period, µs.
const cfsPeriod = 100000

// newCgroups makes this run's parent group.
func newCgroups() (*cgroups, error) {
	c := &cgroups{}
	switch {
	case fileExists("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"):
		c.root, c.home = "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu"
	case fileExists("/sys/fs/cgroup/cgroup.controllers"):
		c.v2, c.root, c.home = true, "/sys/fs/cgroup", "/sys/fs/cgroup"
	default:
		return nil, errors.New("-cgroups: no cgroup v1 cpu controller (/sys/fs/cgroup/cpu) nor cgroup v2 (/sys/fs/cgroup/cgroup.controllers)")
	}
	c.root = filepath.Join(c.root, fmt.Sprintf("tp0-bench-%d", os.Getpid()))
	if err := os.Mkdir(c.root, 0o755); err != nil {
		return nil, fmt.Errorf("-cgroups: %w (root is needed)", err)
	}
	if c.v2 {
		if err := os.WriteFile(filepath.Join(c.root, "cgroup.subtree_control"), []byte("+cpu"), 0o644); err != nil {
			c.close()
			return nil, fmt.Errorf("-cgroups: enabling the cpu controller: %w", err)
		}
	}
	return c, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// set makes (or updates) group name with a quota of cores.
func (c *cgroups) set(name string, cores float64) error {
	dir := filepath.Join(c.root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	quota := int(cores * cfsPeriod)
	if c.v2 {
		return os.WriteFile(filepath.Join(dir, "cpu.max"), fmt.Appendf(nil, "%d %d", quota, cfsPeriod), 0o644)
	}
	if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte(strconv.Itoa(cfsPeriod)), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte(strconv.Itoa(quota)), 0o644)
}

// wrap returns the command that runs path inside group: a shell that moves
// itself there and execs path (so the process is path's, with its pid).
func (c *cgroups) wrap(group, path string) (string, []string) {
	return "/bin/sh", []string{"-c", `echo $$ > "$0" && exec "$@"`, filepath.Join(c.root, group, "cgroup.procs"), path}
}

// enter moves process pid (all its threads) into group.
func (c *cgroups) enter(group string, pid int) error {
	return os.WriteFile(filepath.Join(c.root, group, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

// leave moves pid back where it was.
func (c *cgroups) leave(pid int) {
	os.WriteFile(filepath.Join(c.home, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

// throttled is how many periods group was held back at its quota.
func (c *cgroups) throttled(group string) int {
	b, _ := os.ReadFile(filepath.Join(c.root, group, "cpu.stat"))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "nr_throttled "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// close removes the groups (their processes have exited).
func (c *cgroups) close() {
	c.leave(os.Getpid())
	entries, _ := os.ReadDir(c.root)
	for _, e := range entries {
		if e.IsDir() {
			os.Remove(filepath.Join(c.root, e.Name()))
		}
	}
	os.Remove(c.root)
}
