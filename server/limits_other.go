//go:build !unix

package main

// openFileLimit: no RLIMIT_NOFILE here; MAX_CONNECTIONS is taken as set.
func openFileLimit() (uint64, bool) { return 0, false }
