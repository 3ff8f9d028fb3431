// Package adminapi is the operators' API of a central's admin listener: the
// paths, the JSON bodies both ends agree on, and a client. The central
// serves it (central/operate.go); the server's operator commands (package
// operator) speak it.
//
//	GET    /api/cluster               the cluster's servers, as the node asked sees them (ClusterView)
//	POST   /api/cluster/servers       add a node as a non-voter (AddServer); the leader promotes it once caught up
//	DELETE /api/cluster/servers/{id}  remove a server
//	POST   /api/round                 begin the next round (RoundRequest → RoundView)
//	GET    /api/backup                a consistent copy of the store (a bbolt file; BackupHeader says whose)
//
// Every change, the backup and the record need the admin token as a bearer
// credential. A change sent to a node that does not lead is refused with 409
// and the leader's node and admin URL when known (Error).
package adminapi

import (
	"github.com/loteria-nacional/tp0/cluster"
)

// The API's paths.
const (
	PathCluster = "/api/cluster"
	PathServers = "/api/cluster/servers"
	PathRound   = "/api/round"
	PathBackup  = "/api/backup"
	PathStatus  = "/api/status"
)

// EnvURL is the environment variable an operator command reads for the
// admin listener's URL when --admin is not given.
const EnvURL = "TP0_ADMIN_URL"

// EnvToken is the environment variable an operator command reads for the
// admin token when --token is not given (the central's own key name).
const EnvToken = "ADMIN_TOKEN"

// Error is a refused or failed request's body.
type Error struct {
	Error string `json:"error"`
	// Leader is the leader's "id=address" when the node asked does not lead
	// and knows who does; LeaderAdmin is its admin listener's URL, when known.
	Leader      string `json:"leader,omitempty"`
	LeaderAdmin string `json:"leader_admin,omitempty"`
}

// ClusterView answers GET /api/cluster.
type ClusterView struct {
	ClusterID string `json:"cluster_id"`
	// Node is the node that answered, Leader the leader's "id=address" and
	// LeaderAdmin its admin listener's URL, when known.
	Node        int    `json:"node"`
	Leader      string `json:"leader"`
	LeaderAdmin string `json:"leader_admin,omitempty"`
	// Version is the cluster's version in the answering node's log (the
	// entry format every member reads); Integrity its cross-replica checks.
	Version   int                     `json:"cluster_version"`
	Integrity cluster.IntegrityStatus `json:"integrity"`
	Servers   []cluster.Server        `json:"servers"`
}

// AddServer asks to add node ID at Address. Readdress moves an existing
// member to a new address (it must answer there as that node).
type AddServer struct {
	ID        int    `json:"id"`
	Address   string `json:"address"`
	Readdress bool   `json:"readdress,omitempty"`
}

// AddedServer answers an accepted AddServer.
type AddedServer struct {
	ID       int    `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"` // nonvoter until the leader promotes it; voter for a re-address of a voter
}

// RoundRequest asks for the next round with Agencies (0: the central's AGENCIES).
type RoundRequest struct {
	Agencies int `json:"agencies"`
}

// RoundView answers an accepted RoundRequest.
type RoundView struct {
	Round    string `json:"round"` // the new round's id: its start, RFC 3339
	Agencies int    `json:"agencies"`
}

// The headers of a backup: which node it came from, its role and its
// applied log index (a follower's copy may lack the newest acknowledged
// bets).
const (
	HeaderBackupNode    = "X-Tp0-Backup-Node"
	HeaderBackupRole    = "X-Tp0-Backup-Role"
	HeaderBackupApplied = "X-Tp0-Backup-Applied"
	HeaderBackupLeader  = "X-Tp0-Backup-Leader"
)
