// Command server is the lottery central. It reads config.ini (path in
// SERVER_CONFIG, default ./config.ini; a missing default file means defaults
// and environment), listens for agencies and runs the draw. See the README.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/op/go-logging"

	"github.com/loteria-nacional/tp0/central"
	"github.com/loteria-nacional/tp0/cluster"
	"github.com/loteria-nacional/tp0/internal/testfaults"
	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/operator"
	"github.com/loteria-nacional/tp0/settings"
	"github.com/loteria-nacional/tp0/store"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	cmd := settings.Command{Name: "server", Usage: usage, Version: version,
		Sub: map[string]func([]string) int{
			"export":                   func(a []string) int { return operator.Export(a, stdout, stderr) },
			"cluster":                  func(a []string) int { return operator.Cluster(a, stdout, stderr) },
			"round":                    func(a []string) int { return operator.Round(a, stdout, stderr) },
			"backup":                   func(a []string) int { return operator.Backup(a, stdout, stderr) },
			"restore":                  func(a []string) int { return operator.Restore(a, stdout, stderr) },
			"verify-round":             func(a []string) int { return operator.VerifyRound(a, stdout, stderr) },
			operator.CheckStoreCommand: func(a []string) int { return operator.CheckStore(a, stdout, stderr) },
		}}
	if code, done := cmd.Handle(args, stdout, stderr); done {
		return code
	}
	log := logformat.New(stdout, logging.INFO, "server")
	path, required := os.Getenv("SERVER_CONFIG"), true
	if path == "" {
		path, required = "config.ini", false
	}
	cfg, err := loadConfig(path, required)
	if err != nil {
		for _, e := range settings.Each(err) {
			log.Criticalf("action: config | result: fail | error: %s", logformat.Value(e.Error()))
		}
		return 1
	}
	log = logformat.New(stdout, cfg.LogLevel, "server")
	opts := cfg.Central
	opts.Logger = log
	opts.StoreCheck = operator.StoreCheck()
	opts.Faults = testfaults.Central()
	log.Infof("action: config | result: success | config_file: %s | server_ip: %s | server_port: %d | listen_backlog: %d | logging_level: %s | agencies: %d | db_path: %s | idle_timeout: %s | max_connections: %d | nofile: %d | group_commit: %t | archive_keep: %d | winners_delay: %s | tls: %t | tls_required: %t | tls_deny_serials: %s | admin_addr: %s",
		logformat.Value(settings.FileShown(cfg.File)), logformat.Value(cfg.IP), cfg.Port, cfg.Backlog, cfg.LogLevel, opts.Agencies, logformat.Value(opts.DBPath), opts.IdleTimeout, opts.MaxConns, cfg.FileLimit, opts.GroupCommit, opts.ArchiveKeep, opts.WinnersDelay, opts.TLS != nil, opts.TLSRequired, strings.Join(cfg.TLSDenyShown, ","), logformat.Value(cfg.AdminAddr))
	if cfg.TLSPlaintext {
		log.Warningf("action: config | result: success | tls_required: false | warning: plaintext agency sessions are accepted beside TLS ones (TLS_REQUIRED=false): anyone on the network can speak for an agency that has not used TLS in this run")
	}

	if path := os.Getenv("CPU_PROFILE"); path != "" {
		stopProfile, err := startCPUProfile(path)
		if err != nil {
			log.Criticalf("action: cpu_profile | result: fail | error: %s", logformat.Value(err.Error()))
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
	ln, err := listenAgencies(cfg)
	if err != nil {
		log.Criticalf("action: listen | result: fail | error: %s", logformat.Value(err.Error()))
		return 1
	}
	var admin net.Listener
	if cfg.AdminAddr != "" {
		if admin, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
			log.Criticalf("action: admin_listen | result: fail | error: %s", logformat.Value(err.Error()))
			ln.Close()
			return 1
		}
	}
	if cfg.ClusterNodes != nil {
		// A replica's garbage is mostly raft's: each entry is encoded,
		// written, sent and decoded again. Collected half as often (unless
		// GOGC says otherwise), three replicas on one machine's two cores
		// spend about a fifth less CPU (make bench-cluster).
		if os.Getenv("GOGC") == "" {
			debug.SetGCPercent(replicaGCPercent)
		}
		var peers *tls.Config
		if srv := cfg.Central.TLS; srv != nil {
			// The replica's own pair and the lottery's CA, to dial the others.
			peers = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: srv.Certificates, RootCAs: srv.ClientCAs}
		}
		if cfg.ClusterInsecure && peers == nil {
			log.Warningf("action: config | result: success | cluster_insecure: true | aviso: replicas speak in plaintext (CLUSTER_INSECURE=true): anything that reaches this port can claim to be a replica, start elections and forge log entries; give the replicas mutual TLS")
		}
		node, err := cluster.Start(cluster.Config{ID: cfg.ClusterID, Nodes: cfg.ClusterNodes, Join: cfg.ClusterJoin, DBPath: opts.DBPath,
			Agencies: opts.Agencies, Logger: log, Now: opts.Now, TLS: peers, Insecure: cfg.ClusterInsecure, LogStore: cfg.ClusterLogStore,
			ArchiveKeep: opts.ArchiveKeep, StoreCheck: opts.StoreCheck, AdminURL: adminURL(admin, cfg.ClusterNodes[cfg.ClusterID]), Hooks: testfaults.Cluster(log)})
		if err != nil {
			log.Criticalf("action: cluster_start | result: fail | nodo: %d | error: %s", cfg.ClusterID, logformat.Value(err.Error()))
			ln.Close()
			return 1
		}
		log.Infof("action: cluster_start | result: success | nodo: %d | nodos: %s | id_cluster: %s | unirse: %t | carpeta_raft: %s", cfg.ClusterID,
			logformat.Value(cluster.FormatNodes(cfg.ClusterNodes)), node.Status().Cluster, cfg.ClusterJoin, logformat.Value(opts.DBPath+".raft"))
		opts.Cluster = node
	}
	c, err := central.New(opts)
	if err != nil {
		if opts.Cluster != nil {
			opts.Cluster.Close()
		}
		hint := ""
		if errors.Is(err, store.ErrInvalidFile) {
			hint = " | sugerencia: " + store.Hint
		}
		log.Criticalf("action: open_store | result: fail | db_path: %s | error: %s%s", logformat.Value(opts.DBPath), logformat.Value(err.Error()), hint)
		ln.Close()
		if admin != nil {
			admin.Close()
		}
		return 1
	}
	if admin != nil {
		log.Infof("action: admin_listen | result: success | direccion: %s", admin.Addr())
		c.ServeAdmin(admin)
	}
	serveErr := c.Serve(ctx, ln) // logs the listen line once it accepts
	closeErr := c.Close()
	if errors.Is(serveErr, cluster.ErrRemoved) && closeErr == nil {
		log.Infof("action: shutdown | result: success | motivo: %s", logformat.Value("removed from the cluster"))
		return 0
	}
	if serveErr != nil {
		hint := ""
		if errors.Is(serveErr, store.ErrDamaged) {
			hint = " | sugerencia: " + store.Hint
		}
		log.Criticalf("action: shutdown | result: fail | error: %s%s", logformat.Value(serveErr.Error()), hint)
		return 1
	}
	if closeErr != nil {
		return 1
	}
	log.Infof("action: shutdown | result: success")
	return 0
}

// listenAgencies opens the agencies' listener on SERVER_IP:SERVER_PORT with
// SERVER_LISTEN_BACKLOG.
func listenAgencies(cfg config) (net.Listener, error) {
	ip, err := listenIP(cfg.IP)
	if err != nil {
		return nil, err
	}
	return listen(ip, cfg.Port, cfg.Backlog)
}

// usage is what --help prints: the commands, then every configuration
// key from the table loadConfig reads (defaults).
var usage = `usage: server [--help] [--version]
       server export --db PATH [--csv FILE] [--winners FILE] [--round FILE] [--check]
       server cluster list|add|remove|recover ...   (server cluster --help)
       server round new [--agencies N] [--admin URL]
       server backup --out FILE [--admin URL]
       server restore ...                           (server restore --help)
       server verify-round FILE --ca CA.crt [--data DIR] [--round ID]
       server check-store FILE                      (a store file checked in this process)

The lottery central: it listens for agencies, stores their bets, runs the
draw once every agency has finished and answers each agency's winners.
The commands that speak to a running central take its admin listener's URL
from --admin, or from $TP0_ADMIN_URL, and the admin token from --token, or
from $ADMIN_TOKEN.

It reads config.ini from the working directory, or the file named by
SERVER_CONFIG (which must then exist). Every key of its [DEFAULT] section
can be overridden by an environment variable of the same name. The keys,
their defaults and what they set:

` + settings.Keys(defaults, func(key string) string { return key }) + `
More in the README's Configuration section and docs/cluster.md.
`

// adminURL is the URL of the admin listener ln (nil: none) as a peer
// reaches it: a listener on every interface is named by the host of the
// node's cluster address.
func adminURL(ln net.Listener, clusterAddr string) string {
	if ln == nil {
		return ""
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host, _, _ = net.SplitHostPort(clusterAddr)
	}
	return "http://" + net.JoinHostPort(host, port)
}

// replicaGCPercent is a replica's GOGC.
const replicaGCPercent = 200

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

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
