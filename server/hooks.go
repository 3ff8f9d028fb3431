//go:build !tp0testhooks

package main

import (
	"github.com/loteria-nacional/tp0/central"
	"github.com/loteria-nacional/tp0/cluster"
	"github.com/loteria-nacional/tp0/logformat"
)

// testHooks are the cluster's test faults: none in a release build (see
// hooks_test_build.go, built with -tags tp0testhooks for the end-to-end
// fault tests).
func testHooks(logformat.Logger) *cluster.Hooks { return nil }

// testFaults are the central's test faults: none in a release build.
func testFaults() *central.Faults { return nil }
