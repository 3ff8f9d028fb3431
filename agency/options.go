package agency

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/op/go-logging"

	"github.com/loteria-nacional/tp0/pki"
	"github.com/loteria-nacional/tp0/settings"
)

// Options is an agency's configuration (cmd/agency reads it from config.yaml
// and CLI_<KEY> environment variables).
type Options struct {
	ID             int
	ServerAddress  string
	ServerTimeout  time.Duration
	LogLevel       logging.Level
	BatchMaxAmount int
	BatchWindow    int
	DataPath       string
	WinnersTimeout time.Duration
	Attempts       int
	RetryTimeout   time.Duration
	Backoff        time.Duration
	MaxBackoff     time.Duration
	LoopAmount     int
	LoopPeriod     time.Duration
	// LoopPeriodText is loop.period as written, for the config line (the
	// course's tests compare it with what they wrote).
	LoopPeriodText string
	// TLS is the mutual TLS config (tls.ca, tls.cert, tls.key); nil without.
	TLS *tls.Config
	// Progress, when set, is told after each acknowledged batch of a CSV
	// file how many bets are stored and what fraction of the file was read
	// (cmd/agency draws a progress bar with it on a terminal).
	Progress func(stored uint64, fraction float64)
}

// LoadTLS builds the agency's TLS config: its own pair, and the lottery's CA
// to check the central with. nil when none of the three is set; some but not
// all, an unreadable file, an expired certificate or one the CA did not sign
// is a config error. Configured TLS never falls back to plaintext.
func LoadTLS(ca, cert, key, address string, now time.Time) (*tls.Config, error) {
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	for _, k := range []struct{ key, val string }{{"tls.ca", ca}, {"tls.cert", cert}, {"tls.key", key}} {
		if k.val == "" {
			return nil, &settings.Error{Key: k.key, Value: "", Reason: "must be set with tls.ca, tls.cert and tls.key"}
		}
	}
	pair, pool, err := pki.Load(cert, key, ca, now)
	if err != nil {
		return nil, &settings.Error{Key: "tls.cert", Value: cert, Reason: err.Error()}
	}
	host, _, _ := net.SplitHostPort(address)
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: host}, nil
}
