package main

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// listen opens a TCP listener on ip:port (ip nil: every address) with the
// given accept backlog. The standard library always passes the kernel's
// somaxconn to listen(2), so on Linux the socket is made by hand to honour
// SERVER_LISTEN_BACKLOG.
func listen(ip net.IP, port, backlog int) (net.Listener, error) {
	sa := &syscall.SockaddrInet4{Port: port}
	copy(sa.Addr[:], ip.To4())
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("listen: socket: %w", err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("listen: %w", err)
	}
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("listen on %s: %w", net.JoinHostPort(ipText(ip), fmt.Sprint(port)), err)
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
