// Package ring holds dmlrun's collective algorithms: allreduce (sum, min, max),
// reduce-scatter, allgather, broadcast and barrier, for float32 and float64
// vectors.
//
// It is pure: it turns (rank, size, length) into a schedule of exchanges and runs
// that schedule over a [Peer], an interface this package declares and the
// transport satisfies elsewhere. It opens no sockets and imports no network code,
// so its tests run over in-memory pipes.
//
// Usage, one [Comm] per rank, every rank calling the same collectives in the same
// order (as with MPI):
//
//	c := ring.New(peer, rank, size, ring.Options{})
//	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
//	defer cancel()
//	if err := ring.AllReduce(ctx, c, ring.Sum, grad, grad); err != nil { // in place
//		return fmt.Errorf("step %d: %w", step, err)
//	}
//
// Large vectors use the pipelined ring (reduce-scatter, then allgather: 2(n-1)
// steps, each segment cut into chunks); small ones use recursive doubling, which
// takes log2(n) rounds. [Options] chooses the threshold.
//
// After any allreduce every rank holds the same bytes: the ring's allgather half
// copies one rank's reduced bytes to all, and recursive doubling combines the two
// operands of each round in the same order on both partners.
package ring
