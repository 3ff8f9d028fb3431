package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/op/go-logging"
	"github.com/spf13/viper"

	"github.com/loteria-nacional/tp0/central"
	"github.com/loteria-nacional/tp0/cluster"
	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/pki"
	"github.com/loteria-nacional/tp0/settings"
)

// config is the command's configuration: config.ini's [DEFAULT] section,
// each key overridden by an environment variable of the same name. The
// central's own options are in Central; the rest is the command's (where to
// listen, the log level, the admin listener, the TLS files).
type config struct {
	// File is the config file read ("" when none was: defaults and
	// environment only).
	File      string
	Central   central.Options
	Port      int
	IP        string
	Backlog   int
	LogLevel  logging.Level
	FileLimit uint64 // RLIMIT_NOFILE, which bounds MaxConns; 0 when unknown

	TLSCert, TLSKey, TLSClientCA string          // mutual TLS: the central's pair and the agencies' CA
	TLSDeny                      map[string]bool // revoked agency certificates (pki.Serial spelling)
	TLSDenyShown                 []string        // TLS_DENY_SERIALS as read, for the config line
	// TLSPlaintext is TLS_REQUIRED=false set explicitly beside certificates:
	// the operator opted in to plaintext agencies beside TLS ones.
	TLSPlaintext bool

	AdminAddr string // the operators' HTTP listener (metrics, health, status page); "" is off

	// ClusterNodes are a cluster's nodes (CLUSTER_NODES: id → address); nil
	// for one central. ClusterID is this node's (CLUSTER_NODE_ID).
	ClusterNodes map[int]string
	ClusterID    int
	// ClusterJoin: a node without raft state waits to be added (CLUSTER_JOIN).
	ClusterJoin bool
	// ClusterInsecure lets replicas speak in plaintext (CLUSTER_INSECURE).
	ClusterInsecure bool
	// ClusterLogStore is where raft keeps its log (CLUSTER_LOG_STORE).
	ClusterLogStore cluster.LogStore
}

// defaults are the keys of config.ini with their default values.
var defaults = []settings.Default{
	{Key: "SERVER_PORT", Value: "12345", Help: "TCP port of agencies, the echo check and replica traffic (0: any free port)"},
	{Key: "SERVER_IP", Value: "", Help: "address or host name to listen on (empty: all)"},
	{Key: "SERVER_LISTEN_BACKLOG", Value: "5", Help: "accept backlog"},
	{Key: "LOGGING_LEVEL", Value: "INFO", Help: "CRITICAL, ERROR, WARNING, NOTICE, INFO or DEBUG"},
	{Key: "AGENCIES", Value: "5", Help: "agencies the draw waits for, 1..10000 (a round keeps its own)"},
	{Key: "DB_PATH", Value: "bets.db", Help: "the bbolt store file (a replica's raft state in DB_PATH.raft/)"},
	{Key: "IDLE_TIMEOUT", Value: "30s", Help: "a whole frame must arrive within this, 100ms..1h"},
	{Key: "MAX_CONNECTIONS", Value: "", Help: "connections served at once (empty: the descriptor limit less a reserve)"},
	{Key: "GROUP_COMMIT", Value: "true", Help: "concurrent batches share one transaction and one fsync"},
	{Key: "ARCHIVE_KEEP", Value: "0", Help: "archived rounds kept beside the store (0: all)"},
	{Key: "WINNERS_DELAY", Value: "0s", Help: "wait between logging the draw and answering winners, 0..1m"},
	{Key: "TLS_CERT", Value: "", Help: "the central's certificate (mutual TLS: with TLS_KEY and TLS_CLIENT_CA)"},
	{Key: "TLS_KEY", Value: "", Help: "the central's private key"},
	{Key: "TLS_CLIENT_CA", Value: "", Help: "the CA that signs agencies' and replicas' certificates"},
	{Key: "TLS_REQUIRED", Value: "", Help: "refuse plaintext agencies (empty: true when the TLS files are set)"}, // empty: true when the TLS_ files are set
	{Key: "TLS_DENY_SERIALS", Value: "", Help: "revoked agency certificates' serials, comma-separated"},
	{Key: "ADMIN_ADDR", Value: "", Help: "the operators' HTTP listener host:port (empty: off)"},
	{Key: "ADMIN_TOKEN", Value: "", Help: "the admin token: required beyond loopback and for every change"},
	{Key: "ADMIN_HOSTS", Value: "", Help: "host names the admin listener answers to, comma-separated"},
	{Key: "ADMIN_PPROF", Value: "false", Help: "serve Go's profiles under /debug/pprof/"},
	{Key: "CLUSTER_NODES", Value: "", Help: "a replicated central: 1=host:port,2=host:port,3=host:port (empty: one central)"},
	{Key: "CLUSTER_NODE_ID", Value: "", Help: "this node's id in CLUSTER_NODES"},
	{Key: "CLUSTER_JOIN", Value: "false", Help: "a new node waits to be added (server cluster add) instead of bootstrapping"},
	{Key: "CLUSTER_INSECURE", Value: "false", Help: "let replicas speak without mutual TLS (only on a trusted network)"},
	{Key: "CLUSTER_LOG_STORE", Value: string(cluster.DefaultLogStore), Help: "raft's log: wal (raft-wal) or boltdb (raft-boltdb)"},
}

// loadConfig reads the config file at path (a missing file is fine unless
// required: defaults and environment) and validates every value, reporting
// every bad key at once.
func loadConfig(path string, required bool) (config, error) {
	v := viper.New()
	v.SetConfigType("ini")
	v.AllowEmptyEnv(true) // ADMIN_ADDR= in the environment turns the listener off
	for _, d := range defaults {
		name := "default." + strings.ToLower(d.Key)
		v.SetDefault(name, d.Value)
		v.BindEnv(name, d.Key)
	}
	read := false
	if path != "" {
		file := viper.New() // the file alone: its keys, which must all be known
		file.SetConfigType("ini")
		var err error
		if read, err = settings.ReadInto(path, required, file, v); err != nil {
			return config{}, err
		}
		if read {
			if err := unknownKeys(file, filepath.Base(path)); err != nil {
				return config{}, err
			}
		}
	}
	p := settings.Parser{Lookup: func(key string) string { return v.GetString("default." + strings.ToLower(key)) }}
	o := config{Central: central.NewOptions()}
	if read {
		o.File = path
	}
	o.Port = p.IntIn("SERVER_PORT", 0, 65535) // 0: any free port, named in the listen line
	o.IP = p.String("SERVER_IP")
	o.Backlog = p.IntIn("SERVER_LISTEN_BACKLOG", 1, 65535)
	o.LogLevel = settings.Parse(&p, "LOGGING_LEVEL", logformat.ParseLevel)
	o.Central.Agencies = p.IntIn("AGENCIES", 1, central.MaxAgencies)
	o.Central.DBPath = p.NonEmpty("DB_PATH")
	o.Central.IdleTimeout = p.DurationIn("IDLE_TIMEOUT", 100*time.Millisecond, time.Hour)
	if p.String("MAX_CONNECTIONS") != "" {
		o.Central.MaxConns = p.IntIn("MAX_CONNECTIONS", 1, 1<<20)
	}
	o.Central.GroupCommit = p.Bool("GROUP_COMMIT")
	o.Central.ArchiveKeep = p.IntIn("ARCHIVE_KEEP", 0, 1_000_000)
	o.Central.WinnersDelay = p.DurationIn("WINNERS_DELAY", 0, time.Minute)
	o.TLSCert, o.TLSKey, o.TLSClientCA = p.String("TLS_CERT"), p.String("TLS_KEY"), p.String("TLS_CLIENT_CA")
	tlsRequired := p.String("TLS_REQUIRED")
	if tlsRequired != "" {
		o.Central.TLSRequired = p.Bool("TLS_REQUIRED")
	}
	o.TLSDeny = settings.Parse(&p, "TLS_DENY_SERIALS", func(s string) (map[string]bool, error) {
		deny, shown, err := pki.ParseSerials(s)
		o.TLSDenyShown = shown
		return deny, err
	})
	o.AdminAddr = settings.Parse(&p, "ADMIN_ADDR", parseAdminAddr)
	o.Central.AdminToken = p.String("ADMIN_TOKEN")
	if o.AdminAddr != "" && !loopback(o.AdminAddr) && o.Central.AdminToken == "" {
		settings.Parse(&p, "ADMIN_ADDR", func(s string) (string, error) {
			return s, fmt.Errorf("listens beyond this machine's loopback: set ADMIN_TOKEN (a credential every request must carry), or listen on 127.0.0.1")
		})
	}
	for _, h := range strings.Split(p.String("ADMIN_HOSTS"), ",") {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			o.Central.AdminHosts = append(o.Central.AdminHosts, h)
		}
	}
	o.Central.AdminPprof = p.Bool("ADMIN_PPROF")
	o.ClusterJoin = p.Bool("CLUSTER_JOIN")
	o.ClusterInsecure = p.Bool("CLUSTER_INSECURE")
	o.ClusterLogStore = settings.Parse(&p, "CLUSTER_LOG_STORE", parseLogStore)
	if p.String("CLUSTER_NODES") != "" {
		o.ClusterNodes = settings.Parse(&p, "CLUSTER_NODES", cluster.ParseNodes)
		o.ClusterID = settings.Parse(&p, "CLUSTER_NODE_ID", func(s string) (int, error) {
			return parseNodeID(s, o.ClusterNodes)
		})
		if addr, ok := o.ClusterNodes[o.ClusterID]; ok && o.Port != 0 {
			if _, port, _ := net.SplitHostPort(addr); port != strconv.Itoa(o.Port) {
				settings.Parse(&p, "SERVER_PORT", func(s string) (int, error) {
					return 0, fmt.Errorf("CLUSTER_NODES names this node (%d) at %s: a node listens on the port the others reach it at", o.ClusterID, addr)
				})
			}
		}
	} else if o.ClusterJoin {
		settings.Parse(&p, "CLUSTER_JOIN", func(string) (bool, error) {
			return false, fmt.Errorf("needs CLUSTER_NODES: the cluster as the operator means it, this node's address included")
		})
	}
	if p.Err != nil {
		return o, p.Err
	}
	o.Central.MaxConns, o.FileLimit = central.ConnectionLimit(o.Central.MaxConns, o.ClusterNodes != nil)
	var err error
	if o.Central.TLS, err = loadTLS(o, time.Now()); err != nil {
		return o, err
	}
	// Certificates make TLS the rule: plaintext agency sessions are refused
	// unless the operator says TLS_REQUIRED=false in so many words.
	if o.Central.TLS != nil && tlsRequired == "" {
		o.Central.TLSRequired = true
	}
	o.TLSPlaintext = o.Central.TLS != nil && !o.Central.TLSRequired
	// Replica traffic in plaintext is anyone's who reaches the port: a
	// cluster of more than one node needs mutual TLS, or the operator's
	// explicit CLUSTER_INSECURE=true.
	if o.ClusterNodes != nil && o.Central.TLS == nil && !o.ClusterInsecure && (len(o.ClusterNodes) > 1 || o.ClusterJoin) {
		return o, &settings.Error{Key: "CLUSTER_NODES", Value: cluster.FormatNodes(o.ClusterNodes), Reason: fmt.Sprintf(
			"%d nodes without mutual TLS (TLS_CERT, TLS_KEY, TLS_CLIENT_CA): anything that reaches port %d could speak raft to this node (start elections, forge entries); configure TLS, or set CLUSTER_INSECURE=true to accept that risk",
			len(o.ClusterNodes), o.Port)}
	}
	return o, nil
}

// unknownKeys refuses the keys of config.ini that no setting reads: its
// [DEFAULT] section's keys are the settings' names; any other section is
// read by nothing.
func unknownKeys(file *viper.Viper, name string) error {
	var keys, known []string
	shown := map[string]string{}
	for _, k := range file.AllKeys() {
		section, key, _ := strings.Cut(k, ".")
		if section == "default" {
			key = strings.ToUpper(key)
		} else {
			key = "[" + section + "] " + key
		}
		keys, shown[key] = append(keys, key), k
	}
	for _, d := range defaults {
		known = append(known, d.Key)
	}
	return settings.Unknown(name, keys, func(key string) string { return file.GetString(shown[key]) }, known)
}

// parseNodeID reads CLUSTER_NODE_ID, which must name one of nodes.
func parseNodeID(s string, nodes map[int]string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("is not set: a node of CLUSTER_NODES (%s) needs its own id among them", cluster.FormatNodes(nodes))
	}
	id, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("not a whole number")
	}
	if _, ok := nodes[id]; !ok && nodes != nil {
		return 0, fmt.Errorf("is not one of CLUSTER_NODES (%s)", cluster.FormatNodes(nodes))
	}
	return id, nil
}

// parseLogStore reads CLUSTER_LOG_STORE.
func parseLogStore(s string) (cluster.LogStore, error) {
	switch ls := cluster.LogStore(strings.ToLower(s)); ls {
	case cluster.LogWAL, cluster.LogBolt:
		return ls, nil
	}
	return "", fmt.Errorf("must be %s or %s", cluster.LogWAL, cluster.LogBolt)
}

// loadTLS builds the central's TLS config from TLS_CERT, TLS_KEY and
// TLS_CLIENT_CA (all or none), with TLS_DENY_SERIALS revoked. nil without TLS.
func loadTLS(o config, now time.Time) (*tls.Config, error) {
	if o.TLSCert == "" && o.TLSKey == "" && o.TLSClientCA == "" {
		if o.Central.TLSRequired {
			return nil, &settings.Error{Key: "TLS_REQUIRED", Value: "true", Reason: "needs TLS_CERT, TLS_KEY and TLS_CLIENT_CA"}
		}
		return nil, nil
	}
	for _, k := range []struct{ key, val string }{{"TLS_CERT", o.TLSCert}, {"TLS_KEY", o.TLSKey}, {"TLS_CLIENT_CA", o.TLSClientCA}} {
		if k.val == "" {
			return nil, &settings.Error{Key: k.key, Value: "", Reason: "must be set with the other TLS_ keys"}
		}
	}
	use := pki.Central
	if o.ClusterNodes != nil {
		use = pki.Replica(o.ClusterID) // one pair: the server's for agencies, the client's for the other replicas
	}
	pair, pool, err := pki.Load(o.TLSCert, o.TLSKey, o.TLSClientCA, use, now)
	if err != nil {
		return nil, &settings.Error{Key: "TLS_CERT", Value: o.TLSCert, Reason: err.Error()}
	}
	return central.AgencyTLS(pair, pool, func(c *x509.Certificate) bool { return o.TLSDeny[pki.Serial(c)] }, o.ClusterNodes != nil), nil
}

// parseAdminAddr accepts host:port for the admin listener ("" is off).
func parseAdminAddr(s string) (string, error) {
	if s == "" {
		return s, nil
	}
	if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
		return s, fmt.Errorf("not host:port, such as 127.0.0.1:8080")
	}
	return s, nil
}

// loopback reports whether the admin address listens only on this
// machine's loopback (127.0.0.0/8, ::1, localhost). ":8080" listens on every
// interface: not loopback.
func loopback(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
