//go:build !tp0testhooks

package testfaults

import (
	"github.com/loteria-nacional/tp0/agency"
	"github.com/loteria-nacional/tp0/central"
	"github.com/loteria-nacional/tp0/cluster"
	"github.com/loteria-nacional/tp0/logformat"
)

// Cluster returns the cluster's test faults: none in a release build.
func Cluster(logformat.Logger) *cluster.Hooks { return nil }

// Central returns the central's test faults: none in a release build.
func Central() *central.Faults { return nil }

// History returns an agency's recorded history: none in a release build.
func History(int) (agency.History, error) { return nil, nil }
