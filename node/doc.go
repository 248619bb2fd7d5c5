// Package node is one dmlrun worker. It wires the pure collectives of package
// ring to the TCP data plane of package transport.
//
// A Comm is a communicator: given the ordered data-plane addresses of all
// ranks and its own rank, it connects to the ranks it exchanges data with and
// offers MPI-style collectives:
//
//	ln, _ := transport.Listen("127.0.0.1:0", tcfg)
//	// ... learn every rank's ln.Addr() ...
//	c, err := node.NewComm(ctx, ln, node.CommConfig{Transport: tcfg}, rank, addrs)
//	if err != nil { ... }
//	defer c.Close()
//	err = c.AllReduce(ctx, ring.Sum, grad) // every rank now holds the same sum
//
// A peer that dies or stalls makes the collective fail, with an error naming
// the peer and step, by the context's deadline (or CommConfig.Timeout when the
// context has none); it never hangs.
package node
