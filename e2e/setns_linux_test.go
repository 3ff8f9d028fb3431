package e2e

import "golang.org/x/sys/unix"

// setns moves the calling thread into the network namespace open at fd.
func setns(fd uintptr) error { return unix.Setns(int(fd), unix.CLONE_NEWNET) }
