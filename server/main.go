// Command server is the lottery central. It reads config.ini (path in
// SERVER_CONFIG, default ./config.ini; a missing file means defaults and
// environment), listens for agencies and runs the draw. See the README.
package main

import (
	"context"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/op/go-logging"

	"github.com/loteria-nacional/tp0/logformat"
)

var log = logging.MustGetLogger("server")

func main() { os.Exit(run()) }

func run() int {
	logformat.Setup(os.Stdout, logging.INFO)
	path := os.Getenv("SERVER_CONFIG")
	if path == "" {
		path = "config.ini"
	}
	opts, err := loadOptions(path)
	if err != nil {
		log.Criticalf("action: config | result: fail | error: %s", logformat.Value(err.Error()))
		return 1
	}
	logformat.Setup(os.Stdout, opts.LogLevel)
	log.Infof("action: config | result: success | config_file: %s | server_ip: %s | server_port: %d | listen_backlog: %d | logging_level: %s | agencies: %d | db_path: %s | idle_timeout: %s | max_connections: %d | nofile: %d | group_commit: %t | tls: %t | tls_required: %t | admin_addr: %s",
		logformat.Value(path), logformat.Value(opts.IP), opts.Port, opts.Backlog, opts.LogLevel, opts.Agencies, logformat.Value(opts.DBPath), opts.IdleTimeout, opts.MaxConns, opts.FileLimit, opts.GroupCommit, opts.TLS != nil, opts.TLSRequired, logformat.Value(opts.AdminAddr))

	if path := os.Getenv("CPU_PROFILE"); path != "" {
		stopProfile, err := startCPUProfile(path)
		if err != nil {
			log.Criticalf("action: cpu_profile | result: fail | error: %v", err)
			return 1
		}
		defer stopProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The first signal starts a graceful shutdown; a second one, with the
	// default action restored, ends the process at once.
	context.AfterFunc(ctx, stop)

	// Listen first: a bad address must fail before the store is touched
	// (opening it may archive a finished round).
	ip, err := listenIP(opts.IP)
	if err != nil {
		log.Criticalf("action: listen | result: fail | error: %s", logformat.Value(err.Error()))
		return 1
	}
	ln, err := listen(ip, opts.Port, opts.Backlog)
	if err != nil {
		log.Criticalf("action: listen | result: fail | error: %s", logformat.Value(err.Error()))
		return 1
	}
	var admin net.Listener
	if opts.AdminAddr != "" {
		if admin, err = net.Listen("tcp", opts.AdminAddr); err != nil {
			log.Criticalf("action: admin_listen | result: fail | error: %s", logformat.Value(err.Error()))
			ln.Close()
			return 1
		}
	}
	c, err := newCentral(opts, log)
	if err != nil {
		log.Criticalf("action: open_store | result: fail | db_path: %s | error: %s", logformat.Value(opts.DBPath), logformat.Value(err.Error()))
		ln.Close()
		if admin != nil {
			admin.Close()
		}
		return 1
	}
	if admin != nil {
		log.Infof("action: admin_listen | result: success | address: %s", admin.Addr())
		go c.serveAdmin(ctx, admin)
	}
	log.Infof("action: listen | result: success | address: %s", ln.Addr())
	c.Serve(ctx, ln)
	if err := c.Close(); err != nil {
		return 1
	}
	log.Info("action: shutdown | result: success")
	return 0
}

// startCPUProfile writes a pprof CPU profile of the whole run to path (a
// diagnostics switch: CPU_PROFILE=cpu.prof).
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
