package agency

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/settings"
)

// New validates opts and returns the agency they describe, deciding what it
// does (see chooseWork). getenv gives the single bet of course exercise 5.
func New(opts Options, getenv func(string) string) (*Agency, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	b, echo, err := chooseWork(opts, getenv, opts.Logger)
	if err != nil {
		return nil, err
	}
	return &Agency{opts: opts, log: opts.Logger, bets: b, echo: echo, addrs: addresses(opts.ServerAddress)}, nil
}

// addresses splits a comma-separated server.address.
func addresses(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// NewWithBets validates opts and returns an agency that sends the bets of b
// (a load generator's, say) instead of a file's.
func NewWithBets(opts Options, b Bets) (*Agency, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Agency{opts: opts, log: opts.Logger, bets: b, addrs: addresses(opts.ServerAddress)}, nil
}

// Work names what the agency does, for its config line: the input and the
// mode ("csv", "single" or "echo").
func (a *Agency) Work() (data, mode string) {
	if a.echo {
		return "none", "echo"
	}
	return a.bets.Name(), a.bets.Mode().String()
}

// Winners returns the documents of the agency's winners, once Run got them.
func (a *Agency) Winners() []string { return a.winners }

// Retries returns how many times the agency reconnected.
func (a *Agency) Retries() int { return int(a.retries.Load()) }

// chooseWork decides what the agency does, in this order: the single bet of
// the environment (exercise 5), the bets of its data file, or, with neither
// and loop.amount above 0, the course's echo loop (exercises 1 to 4). Nothing
// to do at all is a configuration error.
func chooseWork(o Options, getenv func(string) string, log logformat.Logger) (b Bets, echo bool, err error) {
	bet, ok, err := singleBetFromEnv(o.ID, getenv)
	if err != nil {
		return nil, false, err
	}
	if ok {
		return &singleBet{bet: bet, log: log}, false, nil
	}
	st, err := os.Stat(o.DataPath)
	switch {
	case err == nil && st.Mode().IsRegular():
		return &csvBets{path: o.DataPath, agency: o.ID, log: log, progress: o.Progress}, false, nil
	case err == nil:
		return nil, false, &settings.Error{Key: "data.path", Value: o.DataPath, Reason: "is not a regular file"}
	case errors.Is(err, fs.ErrNotExist) && o.LoopAmount > 0:
		return nil, true, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, false, &settings.Error{Key: "data.path", Value: o.DataPath,
			Reason: "no such file, and no bet in the environment (NOMBRE ... NUMERO) nor loop.amount > 0: nothing to do"}
	default:
		return nil, false, &settings.Error{Key: "data.path", Value: o.DataPath, Reason: fmt.Sprintf("cannot be read: %v", err)}
	}
}
