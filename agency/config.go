package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/op/go-logging"
	"github.com/spf13/viper"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/pki"
	"github.com/loteria-nacional/tp0/settings"
)

// Options is the agency's configuration: config.yaml, each key overridden by
// CLI_<KEY> in the environment.
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
}

// defaults are the config keys with their default values.
var defaults = []settings.Default{
	{Key: "id", Value: ""},
	{Key: "server.address", Value: "server:12345"},
	{Key: "server.timeout", Value: "30s"},
	{Key: "log.level", Value: "INFO"},
	{Key: "batch.maxAmount", Value: "400"},
	{Key: "batch.window", Value: "4"},
	{Key: "data.path", Value: ""},
	{Key: "winners.timeout", Value: "120s"},
	{Key: "reconnect.attempts", Value: "1000"},
	{Key: "reconnect.timeout", Value: "5m"},
	{Key: "reconnect.backoff", Value: "100ms"},
	{Key: "reconnect.maxBackoff", Value: "3s"},
	{Key: "loop.amount", Value: "0"},
	{Key: "loop.period", Value: "5s"},
	{Key: "tls.ca", Value: ""},
	{Key: "tls.cert", Value: ""},
	{Key: "tls.key", Value: ""},
}

// loadOptions reads path (missing is fine; malformed is not) and the environment.
func loadOptions(path string) (Options, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	v.SetEnvPrefix("cli")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for _, d := range defaults {
		v.SetDefault(d.Key, d.Value)
	}
	if path != "" {
		if err := settings.ReadFile(path, v.ReadConfig); err != nil {
			return Options{}, err
		}
	}
	p := settings.Parser{Lookup: v.GetString}
	var o Options
	o.ID = p.IntIn("id", 1, 1<<31-1)
	o.ServerAddress = settings.Parse(&p, "server.address", parseHostPort)
	o.ServerTimeout = p.DurationIn("server.timeout", time.Millisecond, time.Hour)
	o.LogLevel = settings.Parse(&p, "log.level", logformat.ParseLevel)
	o.BatchMaxAmount = p.IntIn("batch.maxAmount", 1, 100000)
	o.BatchWindow = p.IntIn("batch.window", 1, 64)
	o.DataPath = p.String("data.path")
	if o.DataPath == "" && o.ID > 0 {
		o.DataPath = fmt.Sprintf("./.data/agency-%d.csv", o.ID)
	}
	o.WinnersTimeout = p.DurationIn("winners.timeout", time.Millisecond, 24*time.Hour)
	o.Attempts = p.IntIn("reconnect.attempts", 0, 1000000)
	o.RetryTimeout = p.DurationIn("reconnect.timeout", 0, 24*time.Hour)
	o.Backoff = p.DurationIn("reconnect.backoff", time.Millisecond, time.Hour)
	o.MaxBackoff = p.DurationIn("reconnect.maxBackoff", time.Millisecond, time.Hour)
	o.LoopAmount = p.IntIn("loop.amount", 0, 1<<31-1)
	o.LoopPeriodText = p.String("loop.period")
	o.LoopPeriod = p.DurationIn("loop.period", 0, 24*time.Hour)
	if p.Err != nil {
		return o, p.Err
	}
	var err error
	o.TLS, err = loadTLS(p.String("tls.ca"), p.String("tls.cert"), p.String("tls.key"), o.ServerAddress, time.Now())
	return o, err
}

// loadTLS builds the agency's TLS config: its own pair, and the lottery's CA
// to check the central with. nil when none of the three is set; some but not
// all, an unreadable file, an expired certificate or one the CA did not sign
// is a config error. Configured TLS never falls back to plaintext.
func loadTLS(ca, cert, key, address string, now time.Time) (*tls.Config, error) {
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

// parseHostPort accepts host:port with a port in 1..65535, as a dial needs.
func parseHostPort(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return s, fmt.Errorf("not host:port, such as server:12345")
	}
	if host == "" {
		return s, fmt.Errorf("no host before the port, such as server:12345")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return s, fmt.Errorf("port %q is not in 1..65535", port)
	}
	return s, nil
}
