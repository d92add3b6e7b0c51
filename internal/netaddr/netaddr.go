// Package netaddr answers one question the servers of the runtime ask
// before they listen: is this address on the loopback interface?
//
// Its place in the tree, and what it may import: docs/architecture.md.
package netaddr

import "net"

// Loopback reports whether addr (host:port) names a loopback host:
// "localhost" or a loopback IP. The error is for an address that is not
// host:port.
func Loopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}
