//go:build unix

package central

import "syscall"

// openFileLimit returns the process's limit on open files (RLIMIT_NOFILE,
// which the Go runtime raises to the hard limit at start).
func openFileLimit() (uint64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	return r.Cur, true
}
