// Command certs writes the lottery's keys and certificates for mutual TLS
// (make certs): a CA, the central's pair and one pair per agency, under
// -out (default .data/pki). What exists and is still valid for a month is
// kept, so running it again adds new agencies without touching the others;
// -force starts over with a new CA (every agency then needs its new pair).
//
//	go run ./scripts/certs -agencies 5
//
// Files: ca.crt ca.key server.crt server.key agency-N.crt agency-N.key; keys
// are 0600 and the folder 0700. The central's certificate names "server"
// (its compose name), "localhost" and 127.0.0.1; each agency's carries
// "urn:loteria:agency:N" as a URI SAN, which is where the central reads the
// agency's id.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/loteria-nacional/tp0/pki"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "certs: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	out := fs.String("out", ".data/pki", "folder for the keys and certificates")
	agencies := fs.Int("agencies", 5, "agencies 1..N get a pair")
	days := fs.Int("days", 365, "validity of new certificates, in days (the CA: 5 years)")
	names := fs.String("names", "server,localhost", "the central's DNS names, comma-separated")
	ips := fs.String("ips", "127.0.0.1", "the central's IP addresses, comma-separated")
	force := fs.Bool("force", false, "start over with a new CA")
	replicas := fs.Int("replicas", 0, "replicas 1..N of a clustered central get a pair central-N (names centralN, localhost, 127.0.0.1)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *agencies < 0 || *replicas < 0 || *days < 1 {
		return fmt.Errorf("-agencies and -replicas must be 0 or more and -days 1 or more")
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return err
	}
	// A folder that existed keeps its mode through MkdirAll: the keys'
	// folder is the owner's alone, whatever it was.
	if err := os.Chmod(*out, 0o700); err != nil {
		return err
	}
	now := time.Now()
	spec := pki.Spec{NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(0, 0, *days)}
	ca, made, err := ensure(*out, "ca", *force, now, func() (pki.Pair, error) {
		return pki.NewCA("Lotería Nacional CA", pki.Spec{NotBefore: spec.NotBefore, NotAfter: now.AddDate(5, 0, 0)})
	})
	if err != nil {
		return err
	}
	renew := *force || made // a new CA invalidates every pair it did not sign
	var ipList []net.IP
	for _, s := range strings.Split(*ips, ",") {
		if ip := net.ParseIP(strings.TrimSpace(s)); ip != nil {
			ipList = append(ipList, ip)
		} else if s != "" {
			return fmt.Errorf("-ips: %q is not an IP address", s)
		}
	}
	if _, _, err := ensure(*out, "server", renew, now, func() (pki.Pair, error) {
		return pki.NewServer(ca, strings.Split(*names, ","), ipList, spec)
	}); err != nil {
		return err
	}
	for id := 1; id <= *agencies; id++ {
		if _, _, err := ensure(*out, fmt.Sprintf("agency-%d", id), renew, now, func() (pki.Pair, error) {
			return pki.NewAgency(ca, id, spec)
		}); err != nil {
			return err
		}
	}
	for id := 1; id <= *replicas; id++ {
		if _, _, err := ensure(*out, fmt.Sprintf("central-%d", id), renew, now, func() (pki.Pair, error) {
			return pki.NewReplica(ca, id, []string{fmt.Sprintf("central%d", id), "server", "localhost"}, ipList, spec)
		}); err != nil {
			return err
		}
	}
	fmt.Printf("certs: %s holds the CA, the central's pair and agencies 1..%d\n", *out, *agencies)
	return nil
}

// ensure returns the pair base in dir, making it with mk when it is missing,
// expires within a month, or renew is set. made reports a new pair.
func ensure(dir, base string, renew bool, now time.Time, mk func() (pki.Pair, error)) (p pki.Pair, made bool, err error) {
	if !renew {
		p, err = pki.Read(dir, base)
		switch {
		case err == nil && p.Cert.NotAfter.After(now.AddDate(0, 1, 0)):
			return p, false, nil
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return pki.Pair{}, false, fmt.Errorf("%s: %w (remove it, or run with -force)", filepath.Join(dir, base), err)
		}
	}
	if p, err = mk(); err != nil {
		return pki.Pair{}, false, err
	}
	if err := p.Write(dir, base); err != nil {
		return pki.Pair{}, false, err
	}
	fmt.Printf("certs: wrote %s.crt and %s.key\n", filepath.Join(dir, base), filepath.Join(dir, base))
	return p, true, nil
}
