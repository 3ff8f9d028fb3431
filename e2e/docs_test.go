package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The documents name only what exists: every `server` subcommand they show
// is one, every flag they give it is one of its flags, and every
// environment key they name (a KEY_NAME, or a KEY=value) is read by the
// code: a config key of the central or an agency, a variable a program,
// test, script or the Makefile reads. A key or flag renamed in the code
// without its documents fails here.
func TestDocs_NameWhatExists(t *testing.T) {
	t.Parallel()
	docs := docFiles(t)
	help := map[string]string{}
	helpOf := func(args ...string) string {
		key := strings.Join(args, " ")
		if h, ok := help[key]; ok {
			return h
		}
		out, err := exec.Command(filepath.Join(binDir, args[0]), append(args[1:], "--help")...).CombinedOutput()
		if err != nil {
			help[key] = ""
			return ""
		}
		help[key] = string(out)
		return help[key]
	}
	known := knownEnv(t, helpOf("server")+helpOf("agency"))
	command := regexp.MustCompile(`(?:^|[\s(` + "`" + `])(?:\./|/)?(?:bin/)?server ([a-z][a-z-]*)([^|;&` + "`" + `\n]*)`)
	flag := regexp.MustCompile(`(?:^|\s)(--[a-z][a-z-]*)`)
	envKey := regexp.MustCompile(`\b([A-Z][A-Z0-9]*_[A-Z0-9_]*[A-Z0-9])\b|\b([A-Z][A-Z0-9_]+)=`)
	for path, text := range docs {
		for _, code := range codeOf(text) {
			for _, m := range command.FindAllStringSubmatch(code, -1) {
				sub, rest := m[1], m[2]
				h := helpOf("server", sub)
				if h == "" {
					t.Errorf("%s shows `server %s`, which is no command of the server's", path, sub)
					continue
				}
				for _, f := range flag.FindAllStringSubmatch(rest, -1) {
					if f[1] != "--help" && !strings.Contains(h, f[1]) {
						t.Errorf("%s gives `server %s` the flag %s, which its --help does not list", path, sub, f[1])
					}
				}
			}
			for _, m := range envKey.FindAllStringSubmatch(code, -1) {
				key := m[1] + m[2]
				if !known[key] {
					t.Errorf("%s names %s, which nothing in the code reads", path, key)
				}
			}
		}
	}
}

// docFiles are the README, ARCHITECTURE.md and docs/*.md, by path.
func docFiles(t *testing.T) map[string]string {
	t.Helper()
	paths, _ := filepath.Glob("../docs/*.md")
	paths = append(paths, "../README.md", "../ARCHITECTURE.md")
	out := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = string(b)
	}
	return out
}

// codeOf returns the code of a Markdown text: its fenced blocks and its
// inline code spans.
func codeOf(text string) []string {
	var out []string
	fence := regexp.MustCompile("(?s)```[a-z]*\n(.*?)```")
	for _, m := range fence.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	rest := fence.ReplaceAllString(text, "")
	for _, m := range regexp.MustCompile("`([^`\n]+)`").FindAllStringSubmatch(rest, -1) {
		out = append(out, m[1])
	}
	return out
}

// knownEnv is every environment key something reads: the programs' keys
// (their --help), string literals of the programs' code that look like one,
// what a test reads (os.Getenv), the Makefile's variables, the scripts'
// variables and the compose files' keys; and the few that others read.
func knownEnv(t *testing.T, help string) map[string]bool {
	t.Helper()
	known := map[string]bool{
		"GOGC": true, "GOMAXPROCS": true, "GORACE": true, // Go's runtime
		"REPO_PATH": true, "DEBIAN_FRONTEND": true, // the course's suite, apt
		"RLIMIT_NOFILE": true, // the kernel's descriptor limit, which MAX_CONNECTIONS follows
	}
	key := regexp.MustCompile(`\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*\b`)
	for _, k := range key.FindAllString(help, -1) {
		known[k] = true
	}
	literal := regexp.MustCompile(`"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)[="]`)
	getenv := regexp.MustCompile(`(?:Getenv|LookupEnv)\("([A-Z0-9_]+)"\)`)
	shellVar := regexp.MustCompile(`\$\{?([A-Z][A-Z0-9_]+)|(?m)^\s*(?:export\s+)?([A-Z][A-Z0-9_]+)\s*[:?]?=|([A-Z][A-Z0-9_]+):`)
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".data" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		text := string(b)
		switch name := d.Name(); {
		case strings.HasSuffix(name, "_test.go"):
			for _, m := range getenv.FindAllStringSubmatch(text, -1) {
				known[m[1]] = true
			}
		case strings.HasSuffix(name, ".go"):
			for _, re := range []*regexp.Regexp{literal, getenv} {
				for _, m := range re.FindAllStringSubmatch(text, -1) {
					known[m[1]] = true
				}
			}
		case name == "Makefile" || strings.HasSuffix(name, ".sh") || strings.HasSuffix(name, ".yaml") || name == "run" || name == "Dockerfile":
			for _, m := range shellVar.FindAllStringSubmatch(text, -1) {
				known[m[1]+m[2]+m[3]] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(known) < 60 {
		t.Fatalf("only %d keys found in the code: is the walk wrong?", len(known))
	}
	return known
}

// The recipe of docs/cluster.md's "Three nodes by hand" runs as written,
// and so do the operations it says run against it: the nodes bootstrap,
// two agencies finish, a fourth node is added (and promoted), removed, a
// backup is taken and the next round begun.
func TestDocs_ThreeNodesByHand(t *testing.T) {
	clusterTest(t)
	doc := docFiles(t)["../docs/cluster.md"]
	blocks := func(section string) []string {
		i := strings.Index(doc, "\n## "+section)
		if i < 0 {
			t.Fatalf("docs/cluster.md has no section %q", section)
		}
		body := doc[i+4:]
		if j := strings.Index(body, "\n## "); j >= 0 {
			body = body[:j]
		}
		var out []string
		for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	recipe := blocks("Three nodes by hand")
	add := blocks("Operating it")
	if len(recipe) != 2 || len(add) != 1 {
		t.Fatalf("the recipe's blocks: %d, the operations': %d", len(recipe), len(add))
	}
	p := newDockerProject(t) // a copy of the repository, to run in
	for _, bin := range []string{"server", "agency"} {
		b, err := os.ReadFile(filepath.Join(binDir, bin))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(p.dir, "bin"), 0o755)
		os.WriteFile(filepath.Join(p.dir, "bin", bin), b, 0o755)
	}
	for a := 1; a <= 2; a++ { // the agencies' data, so that prepare-data.sh keeps it
		b, _ := os.ReadFile(filepath.Join(genData, fmt.Sprintf("agency-%d.csv", a)))
		os.MkdirAll(filepath.Join(p.dir, ".data"), 0o755)
		os.WriteFile(filepath.Join(p.dir, ".data", fmt.Sprintf("agency-%d.csv", a)), b, 0o644)
	}
	script := "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + strings.Join(recipe, "\n") + strings.Join(add, "\n") + `
four=$(jobs -p | tail -n 1)
bin/server cluster remove 4
wait $four || { echo "node 4 did not stop cleanly once removed"; exit 1; }
grep -q 'this node was removed from the cluster' .data/hand/node-4.log
bin/server backup --out .data/hand/backup.db
bin/server round new
echo RECIPE-OK
`
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the recipe did not end within 5 minutes:\n%s", out)
	}
	if err != nil || !strings.Contains(string(out), "RECIPE-OK") || strings.Count(string(out), "cant_ganadores") != 2 {
		tail := exec.Command("bash", "-c", "tail -n 20 .data/hand/*.log")
		tail.Dir = p.dir
		logs, _ := tail.CombinedOutput()
		t.Fatalf("the recipe: %v\n%s\n%s", err, out, logs)
	}
}
