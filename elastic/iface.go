package elastic

import (
	"fmt"
	"net"
	"strings"
)

// InterfaceAddr returns bind with its host replaced by the first address of
// the network interface name (IPv4 preferred), so that gossip and the data
// plane use that interface.
func InterfaceAddr(name, bind string) (string, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		var names []string
		if all, err := net.Interfaces(); err == nil {
			for _, i := range all {
				names = append(names, i.Name)
			}
		}
		return "", fmt.Errorf("-iface %s: no such network interface (this host has: %s)", name, strings.Join(names, ", "))
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return "", fmt.Errorf("-iface %s: %w", name, err)
	}
	var pick net.IP
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLinkLocalUnicast() {
			if pick == nil || (pick.To4() == nil && ipn.IP.To4() != nil) {
				pick = ipn.IP
			}
		}
	}
	if pick == nil {
		return "", fmt.Errorf("-iface %s: the interface has no usable address", name)
	}
	_, port, err := net.SplitHostPort(bind)
	if err != nil {
		port = "7946"
	}
	return net.JoinHostPort(pick.String(), port), nil
}

// CheckReachable refuses a ring in which a node advertises a loopback
// address while other nodes run on other hosts: they could never reach it.
func CheckReachable(self Member, members []Member) error {
	isLoop := func(addr string) bool {
		h, _, err := net.SplitHostPort(addr)
		ip := net.ParseIP(h)
		return err == nil && ip != nil && ip.IsLoopback()
	}
	for _, m := range members {
		if isLoop(m.Data) == isLoop(self.Data) {
			continue
		}
		loop := m
		if isLoop(self.Data) {
			loop = self
		}
		if loop.Name == self.Name {
			return fmt.Errorf("this node advertises the loopback address %s, which nodes on other hosts (such as %s) cannot reach: start it with -bind or -advertise set to a routable address, or -iface NAME", self.Data, m)
		}
		return fmt.Errorf("node %s advertises the loopback address %s, which this host cannot reach: that node needs -bind, -advertise or -iface", loop, loop.Data)
	}
	return nil
}
