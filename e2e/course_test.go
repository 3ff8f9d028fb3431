package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The course's public test suite runs a delivery like this: it switches to
// the exercise's branch (git checkout ., git clean -fd, git switch ejN),
// builds -f ./server/Dockerfile -t server:latest and -f ./client/Dockerfile
// -t client:latest, writes server/config.ini and client/config.yaml, runs
// `bash generar-compose.sh docker-compose-dev.yaml N`, writes
// .data/agency-N.csv for exercises 6 to 8, `docker compose -f
// docker-compose-dev.yaml up -d`, and parses every line of `docker compose
// logs -f`, until what it waits for: for exercises 6 to 8, each client's
// "exited with code" line. These tests do the same, with the same paths,
// files and commands, on branches made by scripts/branches.sh, and assert
// what the suite asserts.

// courseServerConfig is the config.ini the suite writes.
func courseServerConfig(backlog int, level string) string {
	return fmt.Sprintf("[DEFAULT]\nSERVER_PORT = 12345\nSERVER_IP = server\nSERVER_LISTEN_BACKLOG = %d\nLOGGING_LEVEL = %s", backlog, level)
}

// courseClientConfig is the client config.yaml the suite writes: no id, no data path.
func courseClientConfig(amount int, period, level string) string {
	return fmt.Sprintf("server:\n  address: \"server:12345\"\nloop:\n  amount: %d\n  period: \"%s\"\nlog:\n  level: \"%s\"\nbatch:\n  maxAmount: 10\n",
		amount, period, level)
}

// courseLine is a log line as the suite's parser reads it.
type courseLine struct {
	source, action, result string
	fields                 map[string]string
}

// parseCourseLine parses like the suite: a line with "action:" is split on
// '|' into source, action, result and details, each detail needing a colon;
// a line with " exited with code " is an exit. ok is false for other lines.
func parseCourseLine(line string) (l courseLine, ok bool, err error) {
	line = strings.TrimRight(line, " \t\r\n")
	if strings.Contains(line, "action:") {
		parts := strings.Split(line, "|")
		if len(parts) < 3 {
			return l, false, fmt.Errorf("fewer than 3 fields: %q", line)
		}
		after := func(s string) string { return strings.TrimSpace(s[strings.LastIndex(s, ":")+1:]) }
		l = courseLine{source: strings.TrimSpace(parts[0]), action: after(parts[1]), result: after(parts[2]), fields: map[string]string{}}
		if l.result != "success" && l.result != "fail" && l.result != "in_progress" {
			return l, false, fmt.Errorf("unknown result %q: %q", l.result, line)
		}
		for _, d := range parts[3:] {
			i := strings.LastIndex(d, ":")
			if i < 0 {
				return l, false, fmt.Errorf("detail %q without a colon: %q", d, line)
			}
			l.fields[strings.TrimSpace(d[:i])] = strings.TrimSpace(d[i+1:])
		}
		return l, true, nil
	}
	if src, code, found := strings.Cut(line, " exited with code "); found {
		result := "fail"
		if n, err := strconv.Atoi(strings.TrimSpace(code)); err == nil && n == 0 {
			result = "success"
		}
		return courseLine{source: strings.TrimSpace(src), action: "exit", result: result}, true, nil
	}
	return l, false, nil
}

func TestParseCourseLine(t *testing.T) {
	l, ok, err := parseCourseLine("client1  | 2026-11-27 10:00:00 INFO     action: receive_message | result: success | client_id: 1 | msg: [CLIENT 1] Message N°2\n")
	if !ok || err != nil || l.source != "client1" || l.action != "receive_message" || l.fields["msg"] != "[CLIENT 1] Message N°2" {
		t.Fatalf("%+v %v %v", l, ok, err)
	}
	if l, ok, _ := parseCourseLine("client1 exited with code 0"); !ok || l.action != "exit" || l.result != "success" {
		t.Fatalf("exit line: %+v", l)
	}
	if _, _, err := parseCourseLine("server | action: x | result: success | no colon here"); err == nil {
		t.Fatal("a detail without a colon was accepted")
	}
}

// courseRun is a copy of the repository set up as the suite sets it up.
type courseRun struct {
	*dockerProject
	compose []string // "docker compose" or "docker-compose"
}

func newCourseRun(t *testing.T) *courseRun {
	needDocker(t)
	p := newDockerProject(t)
	p.removeContainers()
	compose := []string{"docker", "compose"}
	if exec.Command("docker", "compose", "version").Run() != nil {
		compose = []string{"docker-compose"}
	}
	r := &courseRun{dockerProject: p, compose: compose}
	// The delivery is a git repository with branches ej1..ej8.
	r.git("init", "-q", "-b", "main")
	r.git("add", "-A")
	r.git("commit", "-q", "-m", "delivery")
	r.git("config", "user.name", "course")
	r.git("config", "user.email", "course@example.invalid")
	r.must("sh", "scripts/branches.sh")
	r.must("docker", "build", "-f", "./server/Dockerfile", "-t", "server:latest", ".")
	r.must("docker", "build", "-f", "./client/Dockerfile", "-t", "client:latest", ".")
	t.Cleanup(func() { r.composeCmd("down").Run() })
	return r
}

// git runs git in the delivery with a fixed identity.
func (r *courseRun) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=course", "GIT_AUTHOR_EMAIL=course@example.invalid",
		"GIT_COMMITTER_NAME=course", "GIT_COMMITTER_EMAIL=course@example.invalid")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// switchTo is the suite's git.switch_branch.
func (r *courseRun) switchTo(t *testing.T, branch string) {
	r.t = t
	r.git("checkout", ".")
	r.git("clean", "-fd")
	r.git("switch", "-q", branch)
}

func (r *courseRun) composeCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(r.compose[0], append(append(r.compose[1:], "-f", "docker-compose-dev.yaml"), args...)...)
	cmd.Dir = r.dir
	return cmd
}

// setUp writes the suite's config files and compose file for n clients and
// starts everything as the suite does.
func (r *courseRun) setUp(t *testing.T, n int, serverIni, clientYaml string) {
	t.Helper()
	r.t = t
	r.down(0)
	writeFile(t, filepath.Join(r.dir, "server/config.ini"), serverIni)
	writeFile(t, filepath.Join(r.dir, "client/config.yaml"), clientYaml)
	r.must("bash", "generar-compose.sh", "docker-compose-dev.yaml", strconv.Itoa(n))
	if out, err := r.composeCmd("up", "-d").CombinedOutput(); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
}

// down is the suite's docker.down: stop (with -t when grace > 0), then down.
func (r *courseRun) down(grace int) {
	args := []string{"stop"}
	if grace > 0 {
		args = append(args, "-t", strconv.Itoa(grace))
	}
	r.composeCmd(args...).Run()
	r.composeCmd("down").Run()
}

// follow starts `compose logs -f` and returns its lines, parsed, until the
// command ends (after down) or the test does.
func (r *courseRun) follow(t *testing.T) <-chan string {
	t.Helper()
	cmd := r.composeCmd("logs", "-f", "--no-color")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 4096)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			// compose v2 may start a line with "\r\x1b[K".
			lines <- strings.TrimPrefix(sc.Text(), "\r\x1b[K")
		}
		io.Copy(io.Discard, out)
		cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	return lines
}

// next returns the next line, failing the test after d without one.
func next(t *testing.T, lines <-chan string, d time.Duration) (string, bool) {
	t.Helper()
	select {
	case l, ok := <-lines:
		return l, ok
	case <-time.After(d):
		t.Fatalf("no log line within %s", d)
		return "", false
	}
}

// nextAction returns the next line the suite's parser reads (an action or
// an exit), failing the test on a line it could not parse, on a failure, or
// when the logs end before what the caller is waiting for.
func nextAction(t *testing.T, lines <-chan string, waitingFor string) (courseLine, string) {
	t.Helper()
	for {
		line, ok := next(t, lines, 2*time.Minute)
		if !ok {
			t.Fatalf("logs ended before %s", waitingFor)
		}
		l, ok, err := parseCourseLine(line)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue
		}
		if l.result == "fail" {
			t.Fatalf("a line failed: %s", line)
		}
		return l, line
	}
}

func TestCourse_Ej1_EchoLoop(t *testing.T) {
	r := newCourseRun(t)
	r.switchTo(t, "ej1")
	const clients, messages = 5, 5
	r.setUp(t, clients, courseServerConfig(5, "INFO"), courseClientConfig(messages, "50ms", "INFO"))
	lines := r.follow(t)
	seen := map[string][]bool{}
	finished := 0
	for finished < clients {
		l, line := nextAction(t, lines, "every client finished its loop")
		switch {
		case l.action == "receive_message" && l.source != "server":
			i := strings.LastIndex(l.fields["msg"], "°")
			k, err := strconv.Atoi(l.fields["msg"][i+len("°"):])
			if i < 0 || err != nil || k < 1 || k > messages {
				t.Fatalf("client message %q has no number 1..%d after °", l.fields["msg"], messages)
			}
			if seen[l.source] == nil {
				seen[l.source] = make([]bool, messages)
			}
			seen[l.source][k-1] = true
		case l.action == "exit" && l.source == "server":
			t.Fatalf("the server exited: %s", line)
		case l.action == "loop_finished":
			finished++
		}
	}
	for i := 1; i <= clients; i++ {
		name := fmt.Sprintf("client%d", i)
		for k, ok := range seen[name] {
			if !ok {
				t.Errorf("%s logged no echo of message %d", name, k+1)
			}
		}
		if code := r.waitExited(name, time.Minute); code != 0 {
			t.Errorf("%s exited with code %d", name, code)
		}
	}
	if st := r.containerState("server"); !strings.HasPrefix(st, "running") {
		t.Fatalf("server is %q after the clients finished; it must keep running", st)
	}
	r.down(0)
	// Nothing was prepared, and the agencies' mount created nothing on the host.
	if entries, _ := filepath.Glob(filepath.Join(r.dir, ".data", "agency-*")); len(entries) > 0 {
		t.Fatalf("compose up left %v on the host", entries)
	}
}

func TestCourse_Ej2_ConfigLines(t *testing.T) {
	r := newCourseRun(t)
	r.switchTo(t, "ej2")
	for _, tt := range []struct {
		name           string
		server, client string
		want           map[string]map[string]string // source -> key -> value
	}{
		{"A", courseServerConfig(8, "DEBUG"), courseClientConfig(5, "100ms", "DEBUG"), map[string]map[string]string{
			"server":  {"listen_backlog": "8", "logging_level": "DEBUG"},
			"client1": {"loop_amount": "5", "loop_period": "100ms", "log_level": "DEBUG"}}},
		{"B", courseServerConfig(16, "INFO"), courseClientConfig(2, "250ms", "INFO"), map[string]map[string]string{
			"server":  {"listen_backlog": "16", "logging_level": "INFO"},
			"client1": {"loop_amount": "2", "loop_period": "250ms", "log_level": "INFO"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r.setUp(t, 1, tt.server, tt.client)
			lines := r.follow(t)
			// compose logs -f prints each container's backlog in no set order:
			// the suite stops at loop_finished; this reads on until both
			// config lines were checked too.
			checked, finished := map[string]bool{}, false
			for !finished || !checked["server"] || !checked["client1"] {
				l, line := nextAction(t, lines, "loop_finished and both config lines")
				if l.action == "config" {
					for k, v := range tt.want[l.source] {
						if l.fields[k] != v {
							t.Errorf("%s config %s = %q, want %q: %s", l.source, k, l.fields[k], v, line)
						}
					}
					checked[l.source] = true
				}
				finished = finished || l.action == "loop_finished"
			}
			r.down(0)
		})
	}
}

func TestCourse_Ej3_EchoScript(t *testing.T) {
	r := newCourseRun(t)
	r.switchTo(t, "ej3")
	t.Run("ThisServer", func(t *testing.T) {
		r.setUp(t, 0, courseServerConfig(5, "INFO"), courseClientConfig(3, "50ms", "INFO"))
		r.waitLog("server", `action: listen \| result: success`, time.Minute)
		if out, err := r.run("sh", "validar-echo-server.sh"); err != nil || strings.TrimSpace(out) != "action: test_echo_server | result: success" {
			t.Fatalf("sh validar-echo-server.sh: %v\n%s", err, out)
		}
		lines := r.follow(t)
		for {
			if l, _ := nextAction(t, lines, "the server's received message"); l.source == "server" && l.action == "receive_message" {
				break
			}
		}
		r.down(0)
	})
	// The suite's mocks: a plain echo server, and one that answers something
	// else, as container "server" in a compose project named tp0.
	for _, tt := range []struct{ name, prog, want string }{
		{"HealthyMock", `"cat"`, "success"},
		{"UnhealthyMock", `"sh", "-c", "printf 'error reading data: '; cat"`, "fail"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mock := filepath.Join(t.TempDir(), "docker-compose-mock.yaml")
			writeFile(t, mock, `name: tp0
services:
  mock:
    container_name: server
    image: busybox:latest
    entrypoint: ["nc", "-ll", "-p", "12345", "-e", `+tt.prog+`]
    networks: [testing_net]
networks:
  testing_net:
    ipam:
      config:
        - subnet: 172.25.125.0/24
`)
			mockCmd := func(args ...string) *exec.Cmd {
				return exec.Command(r.compose[0], append(append(r.compose[1:], "-f", mock), args...)...)
			}
			if out, err := mockCmd("up", "-d").CombinedOutput(); err != nil {
				t.Fatalf("mock up: %v\n%s", err, out)
			}
			defer mockCmd("down", "-t", "1").Run()
			out, _ := r.run("sh", "validar-echo-server.sh")
			if got := strings.TrimSpace(out); got != "action: test_echo_server | result: "+tt.want {
				t.Fatalf("sh validar-echo-server.sh against the %s: %q", tt.name, got)
			}
		})
	}
}

func TestCourse_Ej4_GracefulStop(t *testing.T) {
	r := newCourseRun(t)
	r.switchTo(t, "ej4")
	for _, tt := range []struct {
		name    string
		clients int
		target  string // container stopped, or "all" for compose stop -t 10
		after   int    // log lines before the stop
	}{
		{"ClientDown", 1, "client1", 10},
		{"ServerDown", 1, "server", 10},
		{"ServerWithoutClientsDown", 0, "server", 2},
		{"BothDown", 1, "all", 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r.setUp(t, tt.clients, courseServerConfig(5, "DEBUG"), courseClientConfig(500, "150ms", "INFO"))
			lines := r.follow(t)
			for i := 0; i < tt.after; i++ {
				line, ok := next(t, lines, 2*time.Minute)
				if !ok {
					t.Fatal("logs ended before the stop")
				}
				if l, ok, err := parseCourseLine(line); err != nil || ok && l.result == "fail" {
					t.Fatalf("before the stop: %v %s", err, line)
				}
			}
			targets := []string{tt.target}
			if tt.target == "all" {
				r.down(10)
				targets = []string{"server", "client1"}
			} else {
				r.must("docker", "stop", tt.target, "-t", "20")
			}
			for _, name := range targets {
				// down removes the containers: their exit is read from the logs.
				if tt.target != "all" {
					if code := r.waitExited(name, time.Minute); code != 0 {
						t.Fatalf("%s exited with code %d:\n%s", name, code, r.logs(name))
					}
				}
			}
			if tt.target == "all" {
				// Every container's last word is its clean exit.
				var rest []string
				for l := range lines {
					rest = append(rest, l)
				}
				all := strings.Join(rest, "\n")
				for _, name := range targets {
					if !strings.Contains(all, name) || !strings.Contains(all, "action: shutdown | result: success") {
						t.Fatalf("%s did not shut down cleanly:\n%s", name, all)
					}
				}
			} else {
				want := "action: shutdown | result: success"
				if !strings.Contains(r.logs(tt.target), want) {
					t.Fatalf("%s did not log %q:\n%s", tt.target, want, r.logs(tt.target))
				}
			}
			r.down(0)
		})
	}
}

// courseAgencyFile writes .data/filename as the suites of exercises 6 to 8
// do: register i is "Name,Surname,<i, 8 digits>,2000-01-01,<number>", the
// number 7574 (a winner) for i in winners and otherwise i (i+1 from 7574 on).
func (r *courseRun) courseAgencyFile(t *testing.T, filename string, n int, winners ...int) {
	t.Helper()
	var b strings.Builder
	for i := 0; i < n; i++ {
		number := i
		if i >= 7574 {
			number = i + 1
		}
		for _, w := range winners {
			if w == i {
				number = 7574
			}
		}
		fmt.Fprintf(&b, "Name,Surname,%08d,2000-01-01,%d\n", i, number)
	}
	writeFile(t, filepath.Join(r.dir, ".data", filename), b.String())
}

// Exercise 5, on branch ej5: one agency sends the statement's bet from its
// environment; the agency's apuesta_enviada and the central's
// apuesta_almacenada name the same document, and nothing fails.
func TestCourse_Ej5_SingleBet(t *testing.T) {
	r := newCourseRun(t)
	r.switchTo(t, "ej5")
	r.setUp(t, 1, courseServerConfig(5, "DEBUG"), courseClientConfig(500, "150ms", "INFO"))
	lines := r.follow(t)
	sent, stored := "", ""
	for sent == "" || stored == "" {
		l, _ := nextAction(t, lines, "apuesta_enviada and apuesta_almacenada")
		switch l.action {
		case "apuesta_enviada":
			sent = l.fields["dni"]
		case "apuesta_almacenada":
			stored = l.fields["dni"]
		}
	}
	if sent != stored || sent != "30904465" {
		t.Fatalf("sent dni %q, stored dni %q, want the statement's 30904465 twice", sent, stored)
	}
	r.down(0)
}

// Exercise 6, on branch ej6: batches of at most batch.maxAmount bets, the
// last one smaller; every bet received before the client's exit, read as the
// suite reads it (up -d, then logs -f until an "exited with code" line,
// which compose prints only for a container it saw running).
func TestCourse_Ej6_Batches(t *testing.T) {
	r := newCourseRun(t)
	// As the suite runs them: exercise 5 first, in the same delivery, cut
	// short once both documents were seen (its round never ends). It once
	// left its round on the host for exercise 6's central to resume.
	r.switchTo(t, "ej5")
	r.setUp(t, 1, courseServerConfig(5, "DEBUG"), courseClientConfig(500, "150ms", "INFO"))
	lines := r.follow(t)
	for seen := 0; seen < 2; {
		if l, _ := nextAction(t, lines, "exercise 5's documents"); l.action == "apuesta_enviada" || l.action == "apuesta_almacenada" {
			seen++
		}
	}
	r.down(0)
	r.switchTo(t, "ej6")
	for _, tt := range []struct{ bets, maxAmount int }{{64, 10}, {99, 10}, {16, 64}, {21, 99}} {
		t.Run(fmt.Sprintf("%dBetsMax%d", tt.bets, tt.maxAmount), func(t *testing.T) {
			r.switchTo(t, "ej6")
			client := strings.Replace(courseClientConfig(500, "150ms", "INFO"), "maxAmount: 10", fmt.Sprintf("maxAmount: %d", tt.maxAmount), 1)
			r.courseAgencyFile(t, "agency-1.csv", tt.bets)
			r.setUp(t, 1, courseServerConfig(5, "DEBUG"), client)
			lines := r.follow(t)
			received := 0
			for {
				l, line := nextAction(t, lines, "the client's exit")
				if l.action == "apuesta_recibida" {
					n, _ := strconv.Atoi(l.fields["cantidad"])
					received += n
					if n != tt.maxAmount && received != tt.bets {
						t.Fatalf("a batch of %d before the last (maxAmount %d): %s", n, tt.maxAmount, line)
					}
				}
				if l.action == "exit" {
					break
				}
			}
			if received != tt.bets {
				t.Fatalf("%d bets received, want %d", received, tt.bets)
			}
			r.down(0)
		})
	}
}

// courseWinners runs exercise 7's check on branch: every bet received before
// the draw, the draw before any client's winners, every client's exit seen,
// and each client's cant_ganadores as the mocked data says.
func courseWinners(t *testing.T, branch string, perClient int, winners [][]int) {
	r := newCourseRun(t)
	r.switchTo(t, branch)
	n := len(winners)
	for i, w := range winners {
		r.courseAgencyFile(t, fmt.Sprintf("agency-%d.csv", i+1), perClient, w...)
	}
	r.setUp(t, n, courseServerConfig(5, "DEBUG"), courseClientConfig(500, "150ms", "INFO"))
	lines := r.follow(t)
	got := map[string]int{}
	drawn, received, exits := false, 0, 0
	for exits < n {
		l, line := nextAction(t, lines, fmt.Sprintf("the exits of %d clients", n))
		switch {
		case l.action == "apuesta_recibida":
			if drawn {
				t.Fatalf("a bet after the draw: %s", line)
			}
			k, _ := strconv.Atoi(l.fields["cantidad"])
			received += k
		case l.action == "sorteo":
			if received != perClient*n {
				t.Fatalf("the draw after %d of %d bets", received, perClient*n)
			}
			drawn = true
		case l.action == "consulta_ganadores" && l.result == "success":
			if !drawn {
				t.Fatalf("winners before the draw: %s", line)
			}
			k, _ := strconv.Atoi(l.fields["cant_ganadores"])
			got[l.source] = k
		case l.action == "exit":
			if !drawn {
				t.Fatalf("an exit before the draw: %s", line)
			}
			exits++
		}
	}
	for i, w := range winners {
		if name := fmt.Sprintf("client%d", i+1); got[name] != len(w) {
			t.Errorf("%s: %d winners, want %d", name, got[name], len(w))
		}
	}
	r.down(0)
}

// Exercise 7, on branch ej7: three clients, winners 2, 1 and 0.
func TestCourse_Ej7_Winners(t *testing.T) {
	courseWinners(t, "ej7", 100, [][]int{{0, 99}, {50}, {}})
}

// Exercise 8, on branch ej8: five clients at once, winners 1 to 5.
func TestCourse_Ej8_Concurrent(t *testing.T) {
	courseWinners(t, "ej8", 60, [][]int{{1}, {1, 2}, {1, 2, 3}, {1, 2, 3, 4}, {1, 2, 3, 4, 5}})
}

// make branches: ej1..ej8 each differ from the delivered commit in one line,
// generar-compose.sh's EXERCISE, and on each the generator writes that
// exercise's compose file.
func TestDelivery_Branches(t *testing.T) {
	t.Parallel()
	r := &courseRun{dockerProject: newDockerProject(t)}
	r.git("init", "-q", "-b", "main")
	r.git("config", "user.name", "course")
	r.git("config", "user.email", "course@example.invalid")
	r.git("add", "-A")
	r.git("commit", "-q", "-m", "delivery")
	r.must("sh", "scripts/branches.sh")
	for n := 1; n <= 8; n++ {
		branch := fmt.Sprintf("ej%d", n)
		if diff := strings.TrimSpace(r.git("diff", "--numstat", "main", branch)); diff != "1\t1\tgenerar-compose.sh" {
			t.Fatalf("%s differs from main by %q", branch, diff)
		}
		r.switchTo(t, branch)
		out := r.must("sh", "generar-compose.sh", "docker-compose-dev.yaml", "1")
		if !strings.Contains(out, "exercise "+branch) {
			t.Fatalf("%s: %s", branch, out)
		}
		b, _ := os.ReadFile(filepath.Join(r.dir, "docker-compose-dev.yaml"))
		if got := strings.Contains(string(b), "NUMERO=7574"); got != (n == 5) {
			t.Errorf("%s: single bet %v", branch, got)
		}
		if got := strings.Contains(string(b), "./.data:/.data:ro"); got != (n >= 6) {
			t.Errorf("%s: .data mounted %v", branch, got)
		}
	}
	r.switchTo(t, "main")
	// Running it again moves the branches, still one line each.
	r.must("sh", "scripts/branches.sh")
}
