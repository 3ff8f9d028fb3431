package main

import (
	"crypto/tls"
	"strings"
	"time"

	"github.com/op/go-logging"
	"github.com/spf13/viper"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/settings"
)

// Options is the server's configuration: config.ini's [DEFAULT] section, each
// key overridden by an environment variable of the same name.
type Options struct {
	Port        int
	IP          string
	Backlog     int
	LogLevel    logging.Level
	Agencies    int
	DBPath      string
	IdleTimeout time.Duration
	MaxConns    int
	FileLimit   uint64 // RLIMIT_NOFILE, which bounds MaxConns; 0 when unknown
	GroupCommit bool   // agencies' batches share commits (store.Options.GroupCommit)

	TLSCert, TLSKey, TLSClientCA string // mutual TLS: the central's pair and the agencies' CA
	TLSRequired                  bool   // refuse plaintext agencies
	TLSDenySerials               string // revoked agency certificates, hex serials, comma-separated
	TLS                          *tls.Config

	AdminAddr string // the operators' HTTP listener (metrics, health, status page); "" is off
}

// defaults are the keys of config.ini with their default values.
var defaults = []settings.Default{
	{Key: "SERVER_PORT", Value: "12345"},
	{Key: "SERVER_IP", Value: ""},
	{Key: "SERVER_LISTEN_BACKLOG", Value: "5"},
	{Key: "LOGGING_LEVEL", Value: "INFO"},
	{Key: "AGENCIES", Value: "5"},
	{Key: "DB_PATH", Value: "bets.db"},
	{Key: "IDLE_TIMEOUT", Value: "30s"},
	{Key: "MAX_CONNECTIONS", Value: ""},
	{Key: "GROUP_COMMIT", Value: "true"},
	{Key: "TLS_CERT", Value: ""},
	{Key: "TLS_KEY", Value: ""},
	{Key: "TLS_CLIENT_CA", Value: ""},
	{Key: "TLS_REQUIRED", Value: "false"},
	{Key: "TLS_DENY_SERIALS", Value: ""},
	{Key: "ADMIN_ADDR", Value: ""},
}

// loadOptions reads the config file at path (a missing file is fine: defaults
// and environment) and validates every value.
func loadOptions(path string) (Options, error) {
	v := viper.New()
	v.SetConfigType("ini")
	for _, d := range defaults {
		name := "default." + strings.ToLower(d.Key)
		v.SetDefault(name, d.Value)
		v.BindEnv(name, d.Key)
	}
	if path != "" {
		if err := settings.ReadFile(path, v.ReadConfig); err != nil {
			return Options{}, err
		}
	}
	p := settings.Parser{Lookup: func(key string) string { return v.GetString("default." + strings.ToLower(key)) }}
	var o Options
	o.Port = p.IntIn("SERVER_PORT", 0, 65535) // 0: any free port, named in the listen line
	o.IP = p.String("SERVER_IP")
	o.Backlog = p.IntIn("SERVER_LISTEN_BACKLOG", 1, 65535)
	o.LogLevel = settings.Parse(&p, "LOGGING_LEVEL", logformat.ParseLevel)
	o.Agencies = p.IntIn("AGENCIES", 1, 999999)
	o.DBPath = p.NonEmpty("DB_PATH")
	o.IdleTimeout = p.DurationIn("IDLE_TIMEOUT", 100*time.Millisecond, time.Hour)
	if p.String("MAX_CONNECTIONS") != "" {
		o.MaxConns = p.IntIn("MAX_CONNECTIONS", 1, 1<<20)
	}
	o.GroupCommit = p.Bool("GROUP_COMMIT")
	o.TLSCert, o.TLSKey, o.TLSClientCA = p.String("TLS_CERT"), p.String("TLS_KEY"), p.String("TLS_CLIENT_CA")
	o.TLSRequired = p.Bool("TLS_REQUIRED")
	o.TLSDenySerials = p.String("TLS_DENY_SERIALS")
	o.AdminAddr = p.String("ADMIN_ADDR")
	if p.Err != nil {
		return o, p.Err
	}
	o.MaxConns, o.FileLimit = connectionLimit(o.MaxConns)
	var err error
	o.TLS, err = loadTLS(o, time.Now())
	return o, err
}

// fdReserve is how many file descriptors the central keeps beside its
// sessions (standard streams, the store, the listener, the poller, refusals
// being written): a quarter of the limit, from 16 to 64.
func fdReserve(nofile uint64) uint64 { return min(max(nofile/4, 16), 64) }

// autoMaxConns bounds MAX_CONNECTIONS when it is derived from the limit.
const autoMaxConns = 65536

// connectionLimit returns the connection limit for a configured value
// (0: not set) and the open-file limit it was derived from or capped by
// (0: unknown). Unset, it is what RLIMIT_NOFILE allows (at most
// autoMaxConns); set above that, it is capped there: past it, accept would
// fail for want of descriptors instead of refusing with a clear error.
func connectionLimit(set int) (maxConns int, fileLimit uint64) {
	nofile, ok := openFileLimit()
	if !ok {
		if set == 0 {
			set = 256
		}
		return set, 0
	}
	allowed := 1
	if r := fdReserve(nofile); nofile > r+1 {
		allowed = int(min(nofile-r, 1<<20))
	}
	if set == 0 {
		return min(allowed, autoMaxConns), nofile
	}
	return min(set, allowed), nofile
}
