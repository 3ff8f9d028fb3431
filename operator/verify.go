package operator

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/loteria-nacional/tp0/agency"
	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/record"
)

const verifyUsage = `usage: server verify-round FILE --ca CA.crt [--data DIR] [--round ID]

Checks a drawn round's signed record (server export --round): that it is
whole, signed by a central's (or a replica's) certificate of the CA in
CA.crt, valid when the round was drawn, and not changed since it was signed;
with --round, that it is the record of round ID (its start, RFC 3339, as the
status page and the agencies' logs show it); with --data, that every agency's
bets and winners are those of its file DIR/agency-N.csv read as the agency
reads it (its count, its digest, which each agency logs at its finish as
resumen, and its winners), and that every file there has a line. Exit 0 when
every check passes; 1, with one line saying which check failed, otherwise.
`

// VerifyRound runs `server verify-round`.
func VerifyRound(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("verify-round")
	ca := fs.String("ca", "", "the lottery's CA certificate")
	data := fs.String("data", "", "the agencies' CSV files")
	round := fs.String("round", "", "the round the record must be of")
	pos, err := parseArgs(fs, args)
	if err == nil && (len(pos) != 1 || *ca == "") {
		err = errors.New("one record file and --ca are needed")
	}
	if err != nil {
		return usageErr(stdout, stderr, "verify-round", verifyUsage, err)
	}
	msg, err := verifyRound(pos[0], *ca, *data, *round)
	if err != nil {
		return failed(stderr, "verify-round", err)
	}
	fmt.Fprintln(stdout, msg)
	return exitOK
}

func verifyRound(file, caPath, dir, round string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		return "", err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return "", fmt.Errorf("--ca %s holds no PEM certificate", caPath)
	}
	r, signer, err := record.Verify(b, roots)
	if err != nil {
		return "", err
	}
	started, err := r.Started()
	if err != nil {
		return "", fmt.Errorf("%w: round %q", record.ErrNotARecord, r.Round)
	}
	if round != "" {
		want, err := time.Parse(time.RFC3339Nano, round)
		if err != nil {
			return "", fmt.Errorf("--round %q is not a round's id (RFC 3339)", round)
		}
		if !want.Equal(started) {
			return "", fmt.Errorf("%w: it is of round %s, not %s", record.ErrRound, r.Round, round)
		}
	}
	msg := fmt.Sprintf("%s: the record of round %s (drawn %s, %d bets), signed by %s: the signature is good", file, r.Round, r.DrawTime, r.Bets, signer)
	if dir == "" {
		return msg, nil
	}
	if err := checkData(r, started, dir); err != nil {
		return "", err
	}
	return msg + fmt.Sprintf("; the %d agencies' bets and winners are those of %s", len(r.Agencies), dir), nil
}

// agencyFile names an agency's file in a data folder.
var agencyFile = regexp.MustCompile(`^agency-([0-9]+)\.csv$`)

// checkData holds the record to the agencies' files in dir.
func checkData(r record.Record, started time.Time, dir string) error {
	inRecord := map[int]bool{}
	for _, a := range r.Agencies {
		inRecord[a.Agency] = true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if m := agencyFile.FindStringSubmatch(e.Name()); m != nil {
			if id, _ := strconv.Atoi(m[1]); !inRecord[id] {
				return fmt.Errorf("%w: %s is in %s, but the record has no agency %d", record.ErrData, e.Name(), dir, id)
			}
		}
	}
	return r.Check(func(a int) (uint64, [lottery.DigestSize]byte, []string, error) {
		var n uint64
		d := lottery.NewDigest()
		var winners []string
		err := agency.ReadFile(filepath.Join(dir, fmt.Sprintf("agency-%d.csv", a)), a, started, func(bet *lottery.Bet) {
			n++
			d.Add(bet)
			if lottery.HasWon(*bet) {
				winners = append(winners, strings.Clone(bet.Document))
			}
		})
		return n, d.Sum(), winners, err
	})
}
