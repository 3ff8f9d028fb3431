package main

import (
	"context"
	"fmt"
	"net"
	"time"
)

// listenIP returns the IPv4 address to listen on: nil (every address) for
// "", the address itself for an IPv4 literal, and otherwise the first IPv4
// address the name resolves to. The course's config says SERVER_IP = server,
// the central's own name on the compose network.
func listenIP(host string) (net.IP, error) {
	if host == "" {
		return nil, nil
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip4 := ip.To4(); ip4 != nil {
			return ip4, nil
		}
		return nil, fmt.Errorf("SERVER_IP %q is not an IPv4 address", host)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIP(ctx, "ip4", host)
	if err != nil {
		return nil, fmt.Errorf("SERVER_IP %q: %w", host, err)
	}
	return ips[0].To4(), nil
}

// ipText is ip for an address, with "" (nil) meaning every address.
func ipText(ip net.IP) string {
	if ip == nil {
		return "0.0.0.0"
	}
	return ip.String()
}
