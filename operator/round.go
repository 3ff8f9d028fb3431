package operator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/loteria-nacional/tp0/adminapi"
)

const roundUsage = `usage: server round new [--agencies N] [--admin URL] [--token TOKEN]

Ends the round, which must be over (drawn, every agency's winners delivered),
archives it beside the store and begins the next (N agencies; default: the
central's AGENCIES). On a cluster, send it to the leader.

` + adminHelp

// Round runs `server round new`.
func Round(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("round")
	admin := addAdminFlags(fs)
	agencies := fs.Int("agencies", 0, "the new round's agencies")
	pos, err := parseArgs(fs, args)
	if err == nil && (len(pos) != 1 || pos[0] != "new") {
		err = errors.New("the command is: round new")
	}
	if err != nil {
		return usageErr(stdout, stderr, "round", roundUsage, err)
	}
	c, err := admin.client()
	if err != nil {
		return usageErr(stdout, stderr, "round", roundUsage, err)
	}
	var out adminapi.RoundView
	if err := c.Do(context.Background(), http.MethodPost, adminapi.PathRound, adminapi.RoundRequest{Agencies: *agencies}, &out); err != nil {
		return failed(stderr, "round new", err)
	}
	fmt.Fprintf(stdout, "round %s begun with %d agencies; the finished one is archived beside the store\n", out.Round, out.Agencies)
	return exitOK
}
