package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/op/go-logging"
	"github.com/spf13/viper"

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
	Backoff        time.Duration
	MaxBackoff     time.Duration
}

var defaults = map[string]any{
	"id":                   "",
	"server.address":       "server:12345",
	"server.timeout":       "30s",
	"log.level":            "INFO",
	"batch.maxamount":      "400",
	"batch.window":         "4",
	"data.path":            "",
	"winners.timeout":      "120s",
	"reconnect.attempts":   "10",
	"reconnect.backoff":    "100ms",
	"reconnect.maxbackoff": "3s",
}

// loadOptions reads path (missing is fine; malformed is not) and the environment.
func loadOptions(path string) (Options, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	v.SetEnvPrefix("cli")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	if path != "" {
		if err := settings.ReadFile(path, v.ReadConfig); err != nil {
			return Options{}, err
		}
	}
	p := settings.Parser{Lookup: v.GetString}
	var o Options
	o.ID = p.IntIn("id", 1, 1<<31-1)
	o.ServerAddress = p.NonEmpty("server.address")
	o.ServerTimeout = p.Duration("server.timeout")
	o.LogLevel = p.Level("log.level")
	o.BatchMaxAmount = p.IntIn("batch.maxAmount", 1, 100000)
	o.BatchWindow = p.IntIn("batch.window", 1, 64)
	o.DataPath = p.String("data.path")
	if o.DataPath == "" && o.ID > 0 {
		o.DataPath = fmt.Sprintf("./.data/agency-%d.csv", o.ID)
	}
	o.WinnersTimeout = p.Duration("winners.timeout")
	o.Attempts = p.IntIn("reconnect.attempts", 0, 1000)
	o.Backoff = p.Duration("reconnect.backoff")
	o.MaxBackoff = p.Duration("reconnect.maxBackoff")
	return o, p.Err
}
