// Command agency sends one agency's bets to the central and asks for its
// winners. It reads config.yaml (path in CLI_CONFIG, default ./config.yaml; a
// missing file means defaults and environment). With NOMBRE, APELLIDO,
// DOCUMENTO, NACIMIENTO and NUMERO set it sends that one bet instead of its
// CSV file. See the README.
package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/op/go-logging"

	"github.com/loteria-nacional/tp0/agency"
	"github.com/loteria-nacional/tp0/logformat"
)

var log = logging.MustGetLogger("agency")

func main() { os.Exit(run()) }

func run() int {
	logformat.Setup(os.Stdout, logging.INFO)
	path := os.Getenv("CLI_CONFIG")
	if path == "" {
		path = "config.yaml"
	}
	opts, err := loadOptions(path)
	if err != nil {
		log.Criticalf("action: config | result: fail | error: %s", logformat.Value(err.Error()))
		return 1
	}
	logformat.Setup(os.Stdout, opts.LogLevel)
	a, err := agency.New(opts, log, os.Getenv)
	if err != nil {
		log.Criticalf("action: config | result: fail | error: %s", logformat.Value(err.Error()))
		return 1
	}
	data, mode := a.Work()
	log.Infof("action: config | result: success | config_file: %s | id: %d | server_address: %s | server_timeout: %s | log_level: %s | batch_max_amount: %d | batch_window: %d | data_path: %s | mode: %s | loop_amount: %d | loop_period: %s | winners_timeout: %s | reconnect_attempts: %d | reconnect_timeout: %s | reconnect_backoff: %s | reconnect_max_backoff: %s | tls: %t",
		logformat.Value(path), opts.ID, logformat.Value(opts.ServerAddress), opts.ServerTimeout, opts.LogLevel, opts.BatchMaxAmount, opts.BatchWindow,
		logformat.Value(data), mode, opts.LoopAmount, logformat.Value(opts.LoopPeriodText), opts.WinnersTimeout, opts.Attempts, opts.RetryTimeout, opts.Backoff, opts.MaxBackoff, opts.TLS != nil)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The first signal stops the agency gracefully; a second one, with the
	// default action restored, ends it at once.
	context.AfterFunc(ctx, stop)
	err = a.Run(ctx)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.Canceled):
		log.Info("action: shutdown | result: success")
		return 0
	default:
		log.Errorf("action: agencia | result: fail | error: %s", logformat.Value(err.Error()))
		return 1
	}
}
