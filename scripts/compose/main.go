// Command compose writes the Docker Compose file for the central and N
// agencies (course exercise 1). ./generar-compose.sh FILE N runs it.
//
//	go run ./scripts/compose [-exercise E] [-single-bet] FILE N
//	go run ./scripts/compose -override [-tls] [-admin-port P] FILE N   # make docker-compose-up
//
// FILE must end in .yaml or .yml; N is a whole number, 0 or more (0: the
// central alone). The output depends only on the arguments. The file is
// written whole or not at all.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const usage = `usage: generar-compose.sh [--single-bet] FILE N [--replicas R]
  FILE          the compose file to write, ending in .yaml or .yml
  N             how many agencies (client1..clientN), a whole number >= 0
  --single-bet  every agency sends the statement's one bet, from NOMBRE,
                APELLIDO, DOCUMENTO, NACIMIENTO and NUMERO (exercise 5)
  --replicas R  a replicated central of R nodes (odd): server, central2, ...
internal (make docker-compose-up):
  -override [-tls] [-admin-port P] FILE N   the operator's override: the
                admin listener published on 127.0.0.1:P, mutual TLS`

func main() {
	err := run(os.Args[1:], os.Stdout)
	if errors.Is(err, errHelp) {
		fmt.Fprintln(os.Stdout, usage)
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "generar-compose: %v\n%s\n", err, usage)
		os.Exit(2)
	}
}

// errHelp is run's answer to --help alone: the usage, exit 0.
var errHelp = errors.New("help requested")

func run(args []string, stdout io.Writer) error {
	// The wrapper always passes -exercise E first: that is not the user's.
	given := args
	if len(given) >= 2 && given[0] == "-exercise" {
		given = given[2:]
	}
	for _, a := range given {
		if a == "-h" || a == "-help" || a == "--help" {
			if len(given) > 1 {
				return fmt.Errorf("%s takes no other argument (got %q)", a, strings.Join(given, " "))
			}
			return errHelp
		}
	}
	fs := flag.NewFlagSet("generar-compose", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	exercise := fs.String("exercise", "main", "the course exercise this delivery is: main (the whole system), ej1 ... ej8")
	single := fs.Bool("single-bet", false, "every agency sends the statement's one bet (exercise 5)")
	override := fs.Bool("override", false, "write the operator's override instead")
	tls := fs.Bool("tls", false, "with -override: mutual TLS (keys from .data/pki)")
	adminPort := fs.Int("admin-port", 8080, "with -override: the host port of the admin listener, on 127.0.0.1")
	replicas := fs.Int("replicas", 1, "a replicated central of this many nodes (odd): server, central2, central3, ...")
	if err := fs.Parse(args); err != nil {
		return err
	}
	args = fs.Args()
	if len(args) > 2 { // flags after FILE N: generar-compose.sh FILE N --replicas 3
		if err := fs.Parse(args[2:]); err != nil {
			return err
		}
		args = append(args[:2:2], fs.Args()...)
	}
	if len(args) != 2 {
		return fmt.Errorf("want 2 arguments, got %d", len(args))
	}
	path, nText := args[0], args[1]
	if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
		return fmt.Errorf("FILE %q does not end in .yaml or .yml", path)
	}
	n, err := strconv.Atoi(nText)
	if err != nil {
		return fmt.Errorf("the agency count N = %q is not a whole number", nText)
	}
	if n < 0 {
		return fmt.Errorf("the agency count N = %d is negative", n)
	}
	if *replicas < 1 || *replicas%2 == 0 || *replicas > 9 {
		return fmt.Errorf("-replicas %d: a cluster has an odd number of nodes, 1 to 9", *replicas)
	}
	if *override {
		if *adminPort < 1 || *adminPort > 65535 {
			return fmt.Errorf("-admin-port %d is not a port", *adminPort)
		}
		return writeAtomic(path, []byte(Override(OverrideSpec{Agencies: n, TLS: *tls, AdminPort: *adminPort, Replicas: *replicas})))
	}
	spec := Spec{Agencies: n, Exercise: *exercise, SingleBet: *single, Replicas: *replicas}
	if err := spec.Validate(); err != nil {
		return err
	}
	if err := writeAtomic(path, []byte(Compose(spec))); err != nil {
		return err
	}
	central := "the central"
	if spec.Replicas > 1 {
		central = fmt.Sprintf("a central of %d replicas (server, central2 ...)", spec.Replicas)
	}
	fmt.Fprintf(stdout, "generar-compose: wrote %s: %s and %d agencies (%s)\n", path, central, n, spec.Describe())
	return nil
}

// writeAtomic writes data to path through a temp file in the same folder,
// so a reader never sees a half-written compose file.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".compose-*.tmp")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// Spec says what compose file to write.
type Spec struct {
	Agencies int
	// Exercise is the course exercise the delivery is ("main": the whole
	// system). Branches ej1..ej8 differ from main only in generar-compose.sh's
	// EXERCISE line: ej1..ej4 run the echo loop (no data is mounted), ej5
	// sends the statement's single bet, ej6..ej8 (and main) read
	// .data/agency-N.csv.
	Exercise string
	// SingleBet gives every agency the statement's bet in its environment.
	SingleBet bool
	// Replicas above 1 make the central a cluster: node 1 is the course's
	// container "server", the others central2, central3, ...
	Replicas int
}

// replicaName is node k's container and host name.
func replicaName(k int) string {
	if k == 1 {
		return "server"
	}
	return fmt.Sprintf("central%d", k)
}

// clusterNodes is CLUSTER_NODES for r replicas, and the agencies' address list.
func clusterNodes(r int) (nodes, addrs string) {
	var ns, as []string
	for k := 1; k <= r; k++ {
		ns = append(ns, fmt.Sprintf("%d=%s:12345", k, replicaName(k)))
		as = append(as, replicaName(k)+":12345")
	}
	return strings.Join(ns, ","), strings.Join(as, ",")
}

// exercises are the values Exercise takes.
var exercises = []string{"main", "ej1", "ej2", "ej3", "ej4", "ej5", "ej6", "ej7", "ej8"}

// Validate reports an exercise that is not one of the course's.
func (s Spec) Validate() error {
	for _, e := range exercises {
		if s.Exercise == e {
			return nil
		}
	}
	return fmt.Errorf("exercise %q is not one of %s", s.Exercise, strings.Join(exercises, ", "))
}

// echoLoop: the agencies run the course's echo loop (exercises 1 to 4).
func (s Spec) echoLoop() bool {
	return s.Exercise >= "ej1" && s.Exercise <= "ej4" && !s.SingleBet
}

// singleBet: the agencies send the statement's bet (exercise 5, or the flag).
func (s Spec) singleBet() bool { return s.SingleBet || s.Exercise == "ej5" }

// Describe says in words what the agencies do.
func (s Spec) Describe() string {
	switch {
	case s.singleBet():
		return "exercise " + s.Exercise + ": each agency sends the statement's single bet"
	case s.echoLoop():
		return "exercise " + s.Exercise + ": the echo loop"
	default:
		return "exercise " + s.Exercise + ": each agency sends .data/agency-N.csv, or runs the echo loop without one"
	}
}

// The statement's bet (exercise 5).
const statementBet = `      - NOMBRE=Santiago Lionel
      - APELLIDO=Lorca
      - DOCUMENTO=30904465
      - NACIMIENTO=1999-03-17
      - NUMERO=7574
`

// StartDelay is how long each agency of this file waits before it starts
// (the agency's start.delay). The course's suites run `up -d` and then
// `docker compose logs -f`, which prints "clientN exited with code 0" only
// for a container it saw running, and what happened before it attached
// container by container, in no set order; a small agency finishes within
// milliseconds of `up -d`. Delayed, the round streams live, in the order it
// happens. make docker-compose-up's override sets it back to 0.
const StartDelay = "3s"

// WinnersDelay is how long the central of this file waits between logging
// the draw and answering the winners (the central's WINNERS_DELAY): compose
// prints the containers' lines as they reach it, and the course's checks
// require the draw's line before any agency's winners line. The override
// of make docker-compose-up sets it back to 0.
const WinnersDelay = "1s"

// insecureReplicas is the plain file's opt-in to replicas in plaintext: it
// carries no keys, and a cluster refuses plaintext replica traffic without
// it. make docker-compose-up REPLICAS=3 gives them mutual TLS (its override
// turns the opt-in off).
const insecureReplicas = `      # Replicas in plaintext: anything on testing_net can speak raft to them
      # (start elections, forge log entries). make docker-compose-up REPLICAS=3
      # runs them over mutual TLS instead.
      - CLUSTER_INSECURE=true
`

// Compose returns the compose file of spec. Paths are relative to the
// project directory (the repository root).
func Compose(spec Spec) string {
	n := spec.Agencies
	var b strings.Builder
	fmt.Fprintf(&b, `# Generated by ./generar-compose.sh for %d agencies (%s). Do not edit; run it again.
# No host port is published: the operator's admin listener is in the override
# that make docker-compose-up writes (.data/docker-compose-override.yaml).
services:`, n, spec.Describe())
	replicas := max(spec.Replicas, 1)
	nodes, addrs := clusterNodes(replicas)
	for k := 1; k <= replicas; k++ {
		// The store lives in the container (its /tmp): a round lasts as long
		// as the container, through docker stop and start, and the next
		// `docker compose up` after a down begins a new one, as each of the
		// course's tests expects. make docker-compose-up's override keeps it
		// on the host instead (.data/server), for resumes and make inspect.
		name, db, cluster := replicaName(k), "/tmp/bets.db", ""
		if replicas > 1 {
			// Each node listens on every address of its container (config.ini's
			// SERVER_IP = server names node 1 only).
			cluster = fmt.Sprintf("      - SERVER_IP=\n      - CLUSTER_NODES=%s\n      - CLUSTER_NODE_ID=%d\n%s", nodes, k, insecureReplicas)
		}
		fmt.Fprintf(&b, `
  %[1]s:
    container_name: %[1]s
    image: server:latest
    entrypoint: /server
    user: "${TP0_UID:-0}:${TP0_GID:-0}"
    environment:
      - AGENCIES=%[2]d
      - DB_PATH=%[3]s
      - ADMIN_ADDR=
      - WINNERS_DELAY=%[5]s
%[4]s    volumes:
      - ./server/config.ini:/config.ini:ro
    networks:
      - testing_net
    healthcheck:
      # The echo check on the central's own port (from config.ini), as the
      # course's netcat check does; a "healthz" line is logged at DEBUG only.
      test: ["CMD-SHELL", "p=$$(grep -E '^ *SERVER_PORT' /config.ini | tr -dc 0-9); echo healthz | nc -w 2 %[1]s $${p:-12345} | grep -q healthz"]
      interval: 1s
      timeout: 3s
      retries: 60
`, name, max(n, 1), db, cluster, WinnersDelay)
	}
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `
  client%[1]d:
    container_name: client%[1]d
    image: client:latest
    entrypoint: /agency
    environment:
      - CLI_ID=%[1]d
      - CLI_START_DELAY=%[2]s
`, i, StartDelay)
		if replicas > 1 {
			fmt.Fprintf(&b, "      - CLI_SERVER_ADDRESS=%s\n", addrs)
		}
		if spec.singleBet() {
			b.WriteString(statementBet)
		}
		b.WriteString(`    volumes:
      - ./client/config.yaml:/config.yaml:ro
`)
		if !spec.echoLoop() && !spec.singleBet() {
			b.WriteString("      - ./.data:/.data:ro\n")
		}
		b.WriteString(`    networks:
      - testing_net
    depends_on:
      server:
        condition: service_healthy
`)
	}
	fmt.Fprintf(&b, `
networks:
  testing_net:
    ipam:
      driver: default
      config:
        - subnet: %s
`, Subnet(n))
	return b.String()
}

// Subnet is testing_net's subnet for n agencies: the course's
// 172.25.125.0/24 while the central, n agencies and the gateway fit in it
// (n ≤ 252), else 172.25.0.0/16 (65,533 addresses).
func Subnet(n int) string {
	if n+2 <= 254 {
		return "172.25.125.0/24"
	}
	return "172.25.0.0/16"
}
