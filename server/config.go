package main

import (
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
	Coalesce    bool
	CoalesceMax time.Duration
}

// configKeys are the keys of config.ini with their defaults.
var configKeys = []struct{ key, def string }{
	{"SERVER_PORT", "12345"},
	{"SERVER_IP", ""},
	{"SERVER_LISTEN_BACKLOG", "5"},
	{"LOGGING_LEVEL", "INFO"},
	{"AGENCIES", "5"},
	{"DB_PATH", "bets.db"},
	{"IDLE_TIMEOUT", "30s"},
	{"MAX_CONNECTIONS", "256"},
	{"COALESCE_COMMITS", "false"},
	{"COALESCE_DELAY", "200us"},
}

// loadOptions reads the config file at path (a missing file is fine: defaults
// and environment) and validates every value.
func loadOptions(path string) (Options, error) {
	v := viper.New()
	v.SetConfigType("ini")
	for _, k := range configKeys {
		name := "default." + strings.ToLower(k.key)
		v.SetDefault(name, k.def)
		v.BindEnv(name, k.key)
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
	o.IdleTimeout = p.Duration("IDLE_TIMEOUT")
	o.MaxConns = p.IntIn("MAX_CONNECTIONS", 1, 1<<20)
	o.Coalesce = p.Bool("COALESCE_COMMITS")
	o.CoalesceMax = p.Duration("COALESCE_DELAY")
	return o, p.Err
}
