//go:build !linux

package main

import (
	"fmt"
	"net"
)

// listen opens a TCP listener on ip:port (ip nil: every address). Outside
// Linux the backlog is the system's default: the standard library does not
// take one, and the course's deployment runs on Linux.
func listen(ip net.IP, port, _ int) (net.Listener, error) {
	ln, err := net.Listen("tcp4", net.JoinHostPort(ipText(ip), fmt.Sprint(port)))
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	return ln, nil
}
