//go:build !linux

package e2e

import "errors"

// setns: network namespaces are Linux's (needNetLab skips elsewhere).
func setns(uintptr) error { return errors.New("network namespaces are Linux's") }
