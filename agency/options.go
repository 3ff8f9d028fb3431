package agency

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/pki"
	"github.com/loteria-nacional/tp0/settings"
)

// Options is an agency's configuration (cmd/agency reads it from config.yaml
// and CLI_<KEY> environment variables). Start from NewOptions and set ID and
// ServerAddress: New validates the rest.
type Options struct {
	ID             int           // the agency's number, 1 and up
	ServerAddress  string        // the central, host:port; a cluster's nodes, comma-separated
	ServerTimeout  time.Duration // bounds each wait for a reply (and a dial)
	BatchMaxAmount int           // bets per batch at most (each batch also fits protocol.MaxBatchFrame)
	BatchWindow    int           // batches in flight, unacknowledged, at most (1..64)
	DataPath       string        // the agency's CSV file
	WinnersTimeout time.Duration // bounds the wait for the draw
	Attempts       int           // reconnections without progress before giving up
	RetryTimeout   time.Duration // time without progress before giving up
	Backoff        time.Duration // first reconnect wait (bound of the jitter)
	MaxBackoff     time.Duration // largest reconnect wait
	LoopAmount     int           // echo loop messages (course exercises 1 to 4); 0: none
	LoopPeriod     time.Duration // between echo loop messages
	// TLS is the mutual TLS config (tls.ca, tls.cert, tls.key); nil without.
	TLS *tls.Config
	// Progress, when set, is told after each acknowledged batch of a CSV
	// file how many bets are stored and what fraction of the file was read
	// (cmd/agency draws a progress bar with it on a terminal).
	Progress func(stored uint64, fraction float64)
	// Logger receives the agency's log lines (logformat.Discard by default).
	Logger logformat.Logger
	// History, when set, is told what the agency asked the central and
	// what it was told, with the times: a history for a checker (the
	// end-to-end tests'). nil tells nothing.
	History History
}

// History is told an agency's operations against the central as they
// end. Times are the agency's clock.
type History interface {
	// Resumed: a session's hello, sent at asked, was answered at told by a
	// Welcome saying committed of the agency's bets are stored.
	Resumed(asked, told time.Time, committed uint64)
	// Batch: the n bets from first, sent at sent, were acknowledged at
	// answered with committed bets stored (Acked), refused for what they
	// are (Refused: a gap, an invalid bet, a finished agency), or their
	// outcome is unknown (Unknown, answered zero): the session ended first.
	Batch(first uint64, n int, sent, answered time.Time, committed uint64, outcome Outcome)
	// Winners: the central told the agency these winners, and it took them.
	Winners(docs []string)
}

// Outcome is what became of a batch, as far as the agency knows.
type Outcome int

// The outcomes of a batch.
const (
	Acked Outcome = iota + 1
	Refused
	Unknown
)

// NewOptions returns the defaults of config.yaml, with no ID and the
// course's server address.
func NewOptions() Options {
	return Options{
		ServerAddress:  "server:12345",
		ServerTimeout:  30 * time.Second,
		BatchMaxAmount: 400,
		BatchWindow:    4,
		WinnersTimeout: 120 * time.Second,
		Attempts:       1000,
		RetryTimeout:   5 * time.Minute,
		Backoff:        100 * time.Millisecond,
		MaxBackoff:     3 * time.Second,
		LoopPeriod:     5 * time.Second,
		Logger:         logformat.Discard,
	}
}

// Validate reports every option out of its range at once.
func (o Options) Validate() error {
	var errs []error
	bad := func(name string, v any, why string) {
		errs = append(errs, fmt.Errorf("agency option %s = %v: %s", name, v, why))
	}
	if o.ID < 1 {
		bad("ID", o.ID, "must be 1 or more")
	}
	if addrs := addresses(o.ServerAddress); len(addrs) == 0 {
		bad("ServerAddress", fmt.Sprintf("%q", o.ServerAddress), "not host:port")
	} else {
		for _, a := range addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				bad("ServerAddress", fmt.Sprintf("%q", o.ServerAddress), fmt.Sprintf("%s is not host:port", a))
			}
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"ServerTimeout", o.ServerTimeout}, {"WinnersTimeout", o.WinnersTimeout}, {"Backoff", o.Backoff}, {"MaxBackoff", o.MaxBackoff}} {
		if d.v <= 0 {
			bad(d.name, d.v, "must be positive")
		}
	}
	if o.MaxBackoff < o.Backoff {
		bad("MaxBackoff", o.MaxBackoff, fmt.Sprintf("must not be below Backoff (%s)", o.Backoff))
	}
	if o.BatchMaxAmount < 1 {
		bad("BatchMaxAmount", o.BatchMaxAmount, "must be 1 or more")
	}
	if o.BatchWindow < 1 || o.BatchWindow > 64 {
		bad("BatchWindow", o.BatchWindow, "must be between 1 and 64")
	}
	if o.Attempts < 0 || o.RetryTimeout < 0 || o.LoopAmount < 0 || o.LoopPeriod < 0 {
		bad("Attempts/RetryTimeout/LoopAmount/LoopPeriod", fmt.Sprint(o.Attempts, o.RetryTimeout, o.LoopAmount, o.LoopPeriod), "must not be negative")
	}
	if o.Logger == nil {
		bad("Logger", nil, "must be set (logformat.Discard writes nothing)")
	}
	return errors.Join(errs...)
}

// LoadTLS builds agency id's TLS config: its own pair (which must name it), and the lottery's CA
// to check the central with. nil when none of the three is set; some but not
// all, an unreadable file, an expired certificate or one the CA did not sign
// is a config error. Configured TLS never falls back to plaintext.
func LoadTLS(id int, ca, cert, key, address string, now time.Time) (*tls.Config, error) {
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	for _, k := range []struct{ key, val string }{{"tls.ca", ca}, {"tls.cert", cert}, {"tls.key", key}} {
		if k.val == "" {
			return nil, &settings.Error{Key: k.key, Value: "", Reason: "must be set with tls.ca, tls.cert and tls.key"}
		}
	}
	pair, pool, err := pki.Load(cert, key, ca, pki.Agency(id), now)
	if err != nil {
		return nil, &settings.Error{Key: "tls.cert", Value: cert, Reason: err.Error()}
	}
	host, _, _ := net.SplitHostPort(address)
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: host}, nil
}
