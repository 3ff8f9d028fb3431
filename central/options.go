package central

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/store"
)

// MaxAgencies bounds Options.Agencies: the largest network the system is
// tested and measured for (make bench-swarm runs 10,000 agencies against
// one central, with and without a kill -9).
const MaxAgencies = 10000

// Options configure a Central. Start from NewOptions: its zero value is not
// valid (no agencies, no store path).
type Options struct {
	// Agencies is how many agencies the draw waits for (1..MaxAgencies).
	Agencies int
	// DBPath is the bbolt store of the round.
	DBPath string
	// IdleTimeout bounds the wait for each frame of a session.
	IdleTimeout time.Duration
	// MaxConns is the connection limit. 0 derives it from RLIMIT_NOFILE
	// (see ConnectionLimit); a value above what the limit allows is capped.
	MaxConns int
	// GroupCommit lets agencies' batches share commits (store.Options.GroupCommit).
	GroupCommit bool
	// Faults are test faults (a test build's switches); nil in production.
	Faults *Faults
	// StoreCheck checks one central's store file before it is opened
	// (store.Options.Check): a damaged file is refused, and the central
	// does not start. nil: none (bbolt is trusted with the file).
	StoreCheck store.FileCheck
	// WinnersDelay is how long the central waits, after it logs the draw,
	// before it answers the agencies waiting for winners (0: none). The
	// course's compose file sets it: compose's `logs -f` interleaves the
	// containers' lines as they reach it, and may print an agency's winners
	// line before the central's draw line a few ms (or, on an engine that
	// polls its log files, a few hundred ms) earlier; the course's checks
	// read them in that order.
	WinnersDelay time.Duration
	// ArchiveKeep is how many archived rounds stay beside the store when a
	// finished round is archived (the oldest go); 0 keeps them all.
	ArchiveKeep int
	// TLS is mutual TLS for agencies (the central's pair, the agencies'
	// CA, revocation); nil without.
	TLS *tls.Config
	// TLSRequired refuses plaintext agency sessions (echo checks stay plaintext).
	TLSRequired bool
	// Logger receives the central's log lines (logformat.Discard by default).
	Logger logformat.Logger
	// Now is the central's clock (time.Now by default): the round's start,
	// the draw's time and deliveries are read from it.
	Now func() time.Time
	// Cluster, when set, is this central's replica of a cluster (a
	// *cluster.Node): its store (DBPath and GroupCommit are the node's
	// then), and who leads. The central serves agencies only while this
	// node leads; followers answer a hello with not_leader and the leader's
	// address.
	Cluster Replica

	// The admin listener (ServeAdmin; see adminguard.go). AdminToken, when
	// set, is required on every route but /healthz and /readyz; AdminHosts
	// are the host names it answers to beside IP literals and localhost;
	// AdminPprof serves Go's profiles under /debug/pprof/.
	AdminToken string
	AdminHosts []string
	AdminPprof bool
}

// NewOptions returns the defaults: those of config.ini.
func NewOptions() Options {
	return Options{
		Agencies:    5,
		DBPath:      "bets.db",
		IdleTimeout: 30 * time.Second,
		GroupCommit: true,
		Logger:      logformat.Discard,
		Now:         time.Now,
	}
}

// Validate reports every option out of its range at once.
func (o Options) Validate() error {
	var errs []error
	bad := func(name string, v any, why string) {
		errs = append(errs, fmt.Errorf("central option %s = %v: %s", name, v, why))
	}
	if o.Agencies < 1 || o.Agencies > MaxAgencies {
		bad("Agencies", o.Agencies, fmt.Sprintf("must be between 1 and %d", MaxAgencies))
	}
	if o.DBPath == "" {
		bad("DBPath", `""`, "must name the store file")
	}
	if o.IdleTimeout < 100*time.Millisecond || o.IdleTimeout > time.Hour {
		bad("IdleTimeout", o.IdleTimeout, "must be between 100ms and 1h")
	}
	if o.WinnersDelay < 0 || o.WinnersDelay > time.Minute {
		bad("WinnersDelay", o.WinnersDelay, "must be between 0 and 1m")
	}
	if o.ArchiveKeep < 0 {
		bad("ArchiveKeep", o.ArchiveKeep, "must be 0 (keep all) or more")
	}
	if o.MaxConns < 0 {
		bad("MaxConns", o.MaxConns, "must be 0 (derived) or more")
	}
	if o.TLSRequired && o.TLS == nil {
		bad("TLSRequired", true, "needs a TLS config")
	}
	if o.Logger == nil {
		bad("Logger", nil, "must be set (logformat.Discard writes nothing)")
	}
	if o.Now == nil {
		bad("Now", nil, "must be set (time.Now)")
	}
	return errors.Join(errs...)
}

// fdReserve is how many file descriptors the central keeps beside its
// sessions (standard streams, the store, the listener, the poller, refusals
// being written): a quarter of the limit, from 16 to 64, plus the admin
// listener's connections (adminMaxConns), so operators cannot starve
// agencies, and on a replica its replica and spare slots (slots.go) and
// raft's own files and outbound connections.
func fdReserve(nofile uint64, replica bool) uint64 {
	r := min(max(nofile/4, 16), 64) + adminMaxConns
	if replica {
		r += replicaConns + spareConns + raftFiles
	}
	return r
}

// raftFiles bounds what raft holds open beside the replica slots: its log
// store, snapshots, and its pooled connections to the peers.
const raftFiles = 32

// autoMaxConns bounds MaxConns when it is derived from the limit.
const autoMaxConns = 65536

// ConnectionLimit returns the connection limit for a configured value
// (0: not set) and the open-file limit it was derived from or capped by
// (0: unknown). Unset, it is what RLIMIT_NOFILE allows (at most 65,536);
// set above that, it is capped there: past it, accept would fail for want of
// descriptors instead of refusing with a clear error.
func ConnectionLimit(set int, replica bool) (maxConns int, fileLimit uint64) {
	nofile, ok := openFileLimit()
	if !ok {
		if set == 0 {
			set = 256
		}
		return set, 0
	}
	allowed := 1
	if r := fdReserve(nofile, replica); nofile > r+1 {
		allowed = int(min(nofile-r, 1<<20))
	}
	if set == 0 {
		return min(allowed, autoMaxConns), nofile
	}
	return min(set, allowed), nofile
}

// Faults are faults a test build of the server switches on, to show that
// the tests that should see them do.
type Faults struct {
	// AckWithoutCommit: every AckWithoutCommit-th batch of one central is
	// acknowledged and never stored, as a central that acked before its
	// commit and lost it would (0: none).
	AckWithoutCommit int
}
