package elastic

import (
	"context"
	"errors"
	"time"

	"github.com/dmlrun/dmlrun/ring"
	"github.com/dmlrun/dmlrun/transport"
)

// The TCP mesh is the ring's Peer.
var _ ring.Peer = (*transport.Mesh)(nil)

// CommConfig configures a Comm.
type CommConfig struct {
	Transport transport.Config
	Ring      ring.Options
	// Epoch is the ring epoch; connections and frames of another epoch are
	// refused.
	Epoch uint32
	// Timeout bounds a collective whose context has no deadline, and the
	// connection set-up. 0 means 60 s.
	Timeout time.Duration
	// Members, when set, are the ring's members in rank order (Comm.Members
	// returns them; a Group sets them).
	Members []Member
}

const defaultTimeout = 60 * time.Second

// Comm is one rank's communicator. It is not safe for concurrent use; after a
// collective fails it is broken (every later call fails): close it and make a
// new one.
type Comm struct {
	mesh    *transport.Mesh
	ring    *ring.Comm
	timeout time.Duration
	epoch   uint32
	members []Member
}

// NewComm connects rank to the ranks it exchanges data with (ring
// neighbours and recursive-doubling partners) and returns the communicator.
// addrs lists every rank's data-plane address in rank order; ln is this
// rank's own listener (at addrs[rank]).
func NewComm(ctx context.Context, ln *transport.Listener, cfg CommConfig, rank int, addrs []string) (*Comm, error) {
	if rank < 0 || rank >= len(addrs) {
		return nil, errors.New("elastic: rank out of range of the address list")
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	ctx, cancel := withDeadline(ctx, timeout)
	defer cancel()
	m, err := transport.Connect(ctx, ln, cfg.Transport, cfg.Epoch, rank, addrs, ring.Links(rank, len(addrs)))
	if err != nil {
		return nil, err
	}
	return &Comm{mesh: m, ring: ring.New(m, rank, len(addrs), cfg.Ring), timeout: timeout, epoch: cfg.Epoch, members: cfg.Members}, nil
}

func withDeadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// Rank is this communicator's rank.
func (c *Comm) Rank() int { return c.ring.Rank() }

// Size is the number of ranks.
func (c *Comm) Size() int { return c.ring.Size() }

// Epoch is the ring's epoch id (EpochOf its members, in a Group).
func (c *Comm) Epoch() uint32 { return c.epoch }

// Members are the ring's members in rank order (nil if CommConfig.Members
// was not set).
func (c *Comm) Members() []Member { return c.members }

// Protection is the weakest frame protection of the communicator's links.
func (c *Comm) Protection() transport.Protection { return c.mesh.Protection() }

// Mesh is the communicator's connections, for their byte counters
// (transport.Mesh.Traffic).
func (c *Comm) Mesh() *transport.Mesh { return c.mesh }

// watchHangup makes the communicator fail at once, in any collective, when
// any peer closes its link, until stop is called (transport's
// Mesh.AbortOnHangup): for the forming of a ring, where a peer closes its
// links only because its attempt failed. Without it a rank whose collective
// waits on one peer would not see another give the attempt up, and would
// wait for its deadline while the peer waits for it in its next attempt.
func (c *Comm) watchHangup() (stop func()) {
	stop, err := c.mesh.AbortOnHangup()
	if err != nil { // out of file descriptors: the ring forms all the same, only slower after a failure
		return func() {}
	}
	return stop
}

// Close aborts any collective in progress and closes the connections.
func (c *Comm) Close() error { return c.mesh.Close() }

// The collectives take their arguments in ring's order (context, op,
// buffers); the methods work on float64, the functions below on float32 or
// float64. A collective that fails returns a RingError: the ring is broken
// (a peer died, stalled or left), every later call fails, and an elastic
// Group re-forms the ring and redoes the step.

// AllReduce reduces buf over all ranks with op, in place.
func (c *Comm) AllReduce(ctx context.Context, op ring.Op, buf []float64) error {
	return AllReduce(ctx, c, op, buf, buf)
}

// ReduceScatter reduces buf with op and leaves block Rank() of the result in
// buf[lo:hi] (see ring.Segment).
func (c *Comm) ReduceScatter(ctx context.Context, op ring.Op, buf []float64) (lo, hi int, err error) {
	return ReduceScatter(ctx, c, op, buf)
}

// AllGather fills every block of buf from the rank that owns it.
func (c *Comm) AllGather(ctx context.Context, buf []float64) error {
	return AllGather(ctx, c, buf)
}

// Broadcast copies buf from rank root to all ranks.
func (c *Comm) Broadcast(ctx context.Context, root int, buf []float64) error {
	return Broadcast(ctx, c, root, buf)
}

// Barrier returns once every rank has entered it.
func (c *Comm) Barrier(ctx context.Context) error {
	ctx, cancel := withDeadline(ctx, c.timeout)
	defer cancel()
	return ringErr(c.ring.Barrier(ctx))
}

// AllReduce reduces src over all ranks of c with op into dst; dst and src
// may be the same slice.
func AllReduce[T ring.Float](ctx context.Context, c *Comm, op ring.Op, dst, src []T) error {
	ctx, cancel := withDeadline(ctx, c.timeout)
	defer cancel()
	return ringErr(ring.AllReduce(ctx, c.ring, op, dst, src))
}

// ReduceScatter reduces buf over all ranks of c with op and leaves block
// Rank() of the result in buf[lo:hi].
func ReduceScatter[T ring.Float](ctx context.Context, c *Comm, op ring.Op, buf []T) (lo, hi int, err error) {
	ctx, cancel := withDeadline(ctx, c.timeout)
	defer cancel()
	lo, hi, err = ring.ReduceScatter(ctx, c.ring, op, buf)
	return lo, hi, ringErr(err)
}

// AllGather fills every block of buf from the rank of c that owns it.
func AllGather[T ring.Float](ctx context.Context, c *Comm, buf []T) error {
	ctx, cancel := withDeadline(ctx, c.timeout)
	defer cancel()
	return ringErr(ring.AllGather(ctx, c.ring, buf))
}

// Broadcast copies buf from rank root of c to all its ranks.
func Broadcast[T ring.Float](ctx context.Context, c *Comm, root int, buf []T) error {
	ctx, cancel := withDeadline(ctx, c.timeout)
	defer cancel()
	return ringErr(ring.Broadcast(ctx, c.ring, root, buf))
}

func ringErr(err error) error {
	if err == nil || IsRingFailure(err) {
		return err
	}
	return RingFailure(err)
}
