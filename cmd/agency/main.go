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
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/op/go-logging"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

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
