package main

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// listen opens a TCP listener on ip:port with the given accept backlog. The
// standard library always uses the kernel's somaxconn, so the socket is made
// by hand to honour SERVER_LISTEN_BACKLOG.
func listen(ip string, port, backlog int) (net.Listener, error) {
	addr := [4]byte{}
	if ip != "" {
		parsed := net.ParseIP(ip).To4()
		if parsed == nil {
			return nil, fmt.Errorf("listen: SERVER_IP %q is not an IPv4 address", ip)
		}
		copy(addr[:], parsed)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("listen: socket: %w", err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("listen: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: addr}); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("listen on %s:%d: %w", ip, port, err)
	}
	if err := syscall.Listen(fd, backlog); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("listen: %w", err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	defer f.Close() // FileListener dups the descriptor
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	return ln, nil
}
