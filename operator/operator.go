// Package operator holds the operators' commands of the server binary:
// those that speak to a running central's admin listener (cluster, round,
// backup; package adminapi is the API) and those that work on a stopped
// central's files (export, restore, cluster recover, verify-round). Each
// command takes its arguments and its output streams and returns the exit
// status: 0 done, 1 failed (one line saying why), 2 bad usage.
package operator

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/loteria-nacional/tp0/adminapi"
)

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// parseArgs parses args, which mix flags and positional arguments, into
// fs; it returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// newFlags is a command's flag set: errors are returned, not printed.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// usageErr reports bad usage (exit 2); --help prints the usage (exit 0).
func usageErr(stdout, stderr io.Writer, cmd, usage string, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "server %s: %v\n\n%s", cmd, err, usage)
	return exitUsage
}

// failed reports a command that failed (exit 1), in one line.
func failed(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "server %s: %v\n", cmd, err)
	return exitFail
}

// adminFlags are the flags of a command that speaks to the admin listener.
type adminFlags struct{ url, token *string }

func addAdminFlags(fs *flag.FlagSet) adminFlags {
	return adminFlags{url: fs.String("admin", "", "the admin listener's URL (default $"+adminapi.EnvURL+")"),
		token: fs.String("token", "", "the admin token (default $"+adminapi.EnvToken+")")}
}

// client is the admin client the flags (or the environment) name.
func (f adminFlags) client() (*adminapi.Client, error) {
	base, token := *f.url, *f.token
	if base == "" {
		base = os.Getenv(adminapi.EnvURL)
	}
	if token == "" {
		token = os.Getenv(adminapi.EnvToken)
	}
	return adminapi.NewClient(base, token)
}

// adminHelp is what every admin command's usage says of --admin and --token.
const adminHelp = `--admin URL is the admin listener (ADMIN_ADDR) of a node, such as
http://127.0.0.1:8080; without it, $` + adminapi.EnvURL + `. --token is the admin token
(ADMIN_TOKEN), needed for every command; without it, $` + adminapi.EnvToken + `.
A change sent to a node that does not lead is refused with the leader's
node and admin URL.
`
