//go:build !unix

package central

// openFileLimit: no RLIMIT_NOFILE here; MAX_CONNECTIONS is taken as set.
func openFileLimit() (uint64, bool) { return 0, false }
