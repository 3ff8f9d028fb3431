// Command agency sends one agency's bets to the central and asks for its
// winners. It reads config.yaml (path in CLI_CONFIG, default ./config.yaml; a
// missing file means defaults and environment). With NOMBRE, APELLIDO,
// DOCUMENTO, NACIMIENTO and NUMERO set it sends that one bet instead of its
// CSV file. See the README.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/op/go-logging"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/loteria-nacional/tp0/agency"
	"github.com/loteria-nacional/tp0/internal/testfaults"
	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/settings"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if code, done := (settings.Command{Name: "agency", Usage: usage, Version: version}).Handle(args, stdout, stderr); done {
		return code
	}
	log := logformat.New(stdout, logging.INFO, "agency")
	path, required := os.Getenv("CLI_CONFIG"), true
	if path == "" {
		path, required = "config.yaml", false
	}
	cfg, err := loadConfig(path, required)
	if err != nil {
		for _, e := range settings.Each(err) {
			log.Criticalf("action: config | result: fail | error: %s", logformat.Value(e.Error()))
		}
		return 1
	}
	log = logformat.New(stdout, cfg.LogLevel, "agency")
	opts := cfg.Agency
	opts.Logger = log
	if term.IsTerminal(int(os.Stderr.Fd())) {
		// A person is watching: a progress bar on the terminal, beside the
		// progreso log lines that Docker and files keep.
		bar := progressbar.NewOptions(1000, progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetWidth(30),
			progressbar.OptionSetDescription(fmt.Sprintf("agencia %d", opts.ID)), progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionClearOnFinish(), progressbar.OptionThrottle(100*time.Millisecond))
		opts.Progress = func(stored uint64, fraction float64) {
			bar.Describe(fmt.Sprintf("agencia %d: %d apuestas almacenadas", opts.ID, stored))
			bar.Set(int(fraction * 1000))
		}
		defer bar.Finish()
	}
	if opts.History, err = testfaults.History(opts.ID); err != nil {
		log.Criticalf("action: config | result: fail | error: %s", logformat.Value(err.Error()))
		return 1
	}
	a, err := agency.New(opts, os.Getenv)
	if err != nil {
		log.Criticalf("action: config | result: fail | error: %s", logformat.Value(err.Error()))
		return 1
	}
	data, mode := a.Work()
	log.Infof("action: config | result: success | config_file: %s | id: %d | server_address: %s | server_timeout: %s | log_level: %s | batch_max_amount: %d | batch_window: %d | data_path: %s | mode: %s | loop_amount: %d | loop_period: %s | winners_timeout: %s | reconnect_attempts: %d | reconnect_timeout: %s | reconnect_backoff: %s | reconnect_max_backoff: %s | tls: %t | start_delay: %s",
		logformat.Value(settings.FileShown(cfg.File)), opts.ID, logformat.Value(opts.ServerAddress), opts.ServerTimeout, cfg.LogLevel, opts.BatchMaxAmount, opts.BatchWindow,
		logformat.Value(data), mode, opts.LoopAmount, logformat.Value(cfg.LoopPeriodText), opts.WinnersTimeout, opts.Attempts, opts.RetryTimeout, opts.Backoff, opts.MaxBackoff, opts.TLS != nil, cfg.StartDelay)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The first signal stops the agency gracefully; a second one, with the
	// default action restored, ends it at once.
	context.AfterFunc(ctx, stop)
	if cfg.StartDelay > 0 {
		t := time.NewTimer(cfg.StartDelay)
		select {
		case <-t.C:
		case <-ctx.Done(): // a signal during the wait: Run sees it and stops at once
		}
		t.Stop()
	}
	err = a.Run(ctx)
	code := 0
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled):
		log.Infof("action: shutdown | result: success")
	default:
		log.Errorf("action: agencia | result: fail | error: %s", logformat.Value(err.Error()))
		code = 1
	}
	return code
}

// usage is what --help prints: every configuration key from the table
// loadConfig reads (defaults), with its environment variable.
var usage = `usage: agency [--help] [--version]

A betting agency: it sends its bets (a CSV file, or the single bet of the
NOMBRE, APELLIDO, DOCUMENTO, NACIMIENTO and NUMERO variables) to the central
exactly once, then asks for its winners; with neither and loop.amount > 0 it
runs the course's echo loop.

It reads config.yaml from the working directory, or the file named by
CLI_CONFIG (which must then exist). Every key can be overridden by an
environment variable. The keys, their variables, defaults and what they set:

` + settings.Keys(defaults, envName) + `
More in the README's Configuration section.
`

// envName is the environment variable that overrides key (viper's
// AutomaticEnv with the CLI prefix and dots as underscores).
func envName(key string) string {
	return "CLI_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"
