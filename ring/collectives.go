package ring

import (
	"context"
	"fmt"
)

// AllReduce reduces src over all ranks with op and leaves the result in dst on
// every rank. dst and src must have the same length on every rank; they may be
// the same slice (in place). The result is bit-for-bit the same on all ranks.
func AllReduce[T Float](ctx context.Context, c *Comm, op Op, dst, src []T) error {
	if len(dst) != len(src) {
		return fmt.Errorf("allreduce: dst has %d elements, src %d", len(dst), len(src))
	}
	es := elemSize[T]()
	d, s := asBytes(dst), asBytes(src)
	switch {
	case len(src) == 0:
		return nil
	case c.size == 1:
		copy(d, s)
		return nil
	}
	algo := c.opts.Algorithm
	if algo == Auto {
		algo = Ring
		if len(s) <= c.opts.SmallBytes {
			algo = RecursiveDoubling
		}
	}
	c.begin(SpanAllReduce)
	if algo == RecursiveDoubling {
		c.begin(SpanRecursiveDoubling)
		err := c.end(SpanRecursiveDoubling, c.recursiveDoubling(ctx, "allreduce", op, es, d, s))
		return c.end(SpanAllReduce, err)
	}
	x := c.start("allreduce", es, maxSegBytes(len(src), c.size, es))
	c.begin(SpanReduceScatter)
	if err := c.end(SpanReduceScatter, x.reduceScatter(ctx, op, d, s, len(src))); err != nil {
		return c.end(SpanAllReduce, err)
	}
	c.begin(SpanAllGather)
	err := c.end(SpanAllGather, x.allGather(ctx, d, len(src), c.size-1))
	return c.end(SpanAllReduce, err)
}

// ReduceScatter reduces buf over all ranks with op, in place, and leaves on rank
// r only block r of the result: buf[lo:hi] with lo, hi = Segment(len(buf),
// Size(), r), which it returns. The rest of buf holds partial sums.
func ReduceScatter[T Float](ctx context.Context, c *Comm, op Op, buf []T) (lo, hi int, err error) {
	lo, hi = Segment(len(buf), c.size, c.rank)
	if c.size == 1 || len(buf) == 0 {
		return lo, hi, nil
	}
	es := elemSize[T]()
	b := asBytes(buf)
	c.begin(SpanReduceScatter)
	x := c.start("reduce-scatter", es, maxSegBytes(len(buf), c.size, es))
	return lo, hi, c.end(SpanReduceScatter, x.reduceScatter(ctx, op, b, b, len(buf)))
}

// AllGather fills every block of buf from the rank that owns it: rank r
// contributes buf[lo:hi] with lo, hi = Segment(len(buf), Size(), r), and on
// return every rank holds all blocks.
func AllGather[T Float](ctx context.Context, c *Comm, buf []T) error {
	if c.size == 1 || len(buf) == 0 {
		return nil
	}
	es := elemSize[T]()
	c.begin(SpanAllGather)
	x := c.start("allgather", es, maxSegBytes(len(buf), c.size, es))
	return c.end(SpanAllGather, x.allGather(ctx, asBytes(buf), len(buf), 0))
}

// Broadcast copies buf from rank root to every other rank, pipelined along the
// ring starting at root.
func Broadcast[T Float](ctx context.Context, c *Comm, root int, buf []T) error {
	if root < 0 || root >= c.size {
		return fmt.Errorf("broadcast: root %d out of range for %d ranks", root, c.size)
	}
	if c.size == 1 {
		return nil
	}
	c.begin(SpanBroadcast)
	x := c.start("broadcast", elemSize[T](), len(asBytes(buf)))
	return c.end(SpanBroadcast, x.broadcast(ctx, root, asBytes(buf)))
}

// broadcast passes buf from root along the ring, piece by piece.
func (x *run) broadcast(ctx context.Context, root int, b []byte) error {
	n := x.c.size
	pos := (x.c.rank - root + n) % n
	next, prev := (x.c.rank+1)%n, (x.c.rank-1+n)%n
	for k := 0; k < x.pieces; k++ {
		p := x.part(b, k)
		if pos > 0 { // receive piece k from the previous rank
			if err := x.exchange(ctx, 0, k, -1, nil, prev, p); err != nil {
				return err
			}
		}
		if pos < n-1 { // and pass it on; the kernel's buffers overlap the two
			if err := x.exchange(ctx, 0, k, next, p, -1, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// Barrier returns once every rank has entered it (log2(n) rounds of empty
// messages).
func (c *Comm) Barrier(ctx context.Context) error {
	if c.size == 1 {
		return nil
	}
	c.begin(SpanBarrier)
	return c.end(SpanBarrier, c.recursiveDoubling(ctx, "barrier", Sum, 8, nil, nil))
}

// reduceScatter runs n-1 ring steps. At step s rank r sends block r-s-1 to the
// next rank and receives block r-s-2 from the previous one, reducing it into
// dst, so that after the last step rank r holds the full reduction of block r.
// src supplies this rank's own values (it may be dst).
func (x *run) reduceScatter(ctx context.Context, op Op, dst, src []byte, length int) error {
	n, r := x.c.size, x.c.rank
	next, prev := (r+1)%n, (r-1+n)%n
	inPlace := len(dst) > 0 && &dst[0] == &src[0]
	for s := 0; s < n-1; s++ {
		from := dst // blocks sent after step 0 carry the partial sums received before
		if s == 0 {
			from = src
		}
		sendSeg := x.seg(from, length, r-s-1)
		dstSeg, srcSeg := x.seg(dst, length, r-s-2), x.seg(src, length, r-s-2)
		for k := 0; k < x.pieces; k++ {
			// Out of place, the partial sum lands straight in dst and our own
			// values are added to it; in place, it lands in scratch first.
			dp, sp := x.part(dstSeg, k), x.part(srcSeg, k)
			in, add := dp, sp
			if inPlace {
				in = x.scratch(len(dp))
				add = in
			}
			if err := x.exchange(ctx, s, k, next, x.part(sendSeg, k), prev, in); err != nil {
				return err
			}
			accumulate(op, x.es, dp, add)
		}
	}
	return nil
}

// allGather runs n-1 ring steps numbered from step0: at each, rank r sends
// block r-s (complete) to the next rank and receives block r-s-1 straight into
// buf.
func (x *run) allGather(ctx context.Context, buf []byte, length, step0 int) error {
	n, r := x.c.size, x.c.rank
	next, prev := (r+1)%n, (r-1+n)%n
	for s := 0; s < n-1; s++ {
		sendSeg, recvSeg := x.seg(buf, length, r-s), x.seg(buf, length, r-s-1)
		for k := 0; k < x.pieces; k++ {
			if err := x.exchange(ctx, step0+s, k, next, x.part(sendSeg, k), prev, x.part(recvSeg, k)); err != nil {
				return err
			}
		}
	}
	return nil
}

// recursiveDoubling allreduces src into dst in log2(n) rounds of pairwise
// exchange (MPICH's algorithm). With n not a power of two, the first 2*rem
// ranks fold in pairs first (even ranks hand their vector to the odd one and
// wait), and get the result back at the end. Partners combine their operands
// lower rank first, so both compute the same bits.
func (c *Comm) recursiveDoubling(ctx context.Context, name string, op Op, es int, dst, src []byte) error {
	n, r := c.size, c.rank
	x := c.start(name, es, len(src))
	pof2 := 1
	for pof2*2 <= n {
		pof2 *= 2
	}
	rem := n - pof2
	rounds := 0
	for m := 1; m < pof2; m <<= 1 {
		rounds++
	}
	lastStep := rounds + 1

	cur := src // where this rank's partial result lives
	newrank := r - rem
	if r < 2*rem {
		if r%2 == 0 { // fold: hand the vector to r+1 and sit out the rounds
			for k := 0; k < x.pieces; k++ {
				if err := x.exchange(ctx, 0, k, r+1, x.part(src, k), -1, nil); err != nil {
					return err
				}
			}
			for k := 0; k < x.pieces; k++ {
				if err := x.exchange(ctx, lastStep, k, -1, nil, r+1, x.part(dst, k)); err != nil {
					return err
				}
			}
			return nil
		}
		for k := 0; k < x.pieces; k++ {
			tmp := x.scratch(len(x.part(src, k)))
			if err := x.exchange(ctx, 0, k, -1, nil, r-1, tmp); err != nil {
				return err
			}
			reduce(op, es, x.part(dst, k), tmp, x.part(src, k)) // r-1 is lower
		}
		cur = dst
		newrank = r / 2
	}
	step := 1
	for mask := 1; mask < pof2; mask <<= 1 {
		pn := newrank ^ mask
		partner := pn + rem
		if pn < rem {
			partner = pn*2 + 1
		}
		for k := 0; k < x.pieces; k++ {
			mine := x.part(cur, k)
			tmp := x.scratch(len(mine))
			if err := x.exchange(ctx, step, k, partner, mine, partner, tmp); err != nil {
				return err
			}
			if newrank < pn {
				reduce(op, es, x.part(dst, k), mine, tmp)
			} else {
				reduce(op, es, x.part(dst, k), tmp, mine)
			}
		}
		cur = dst
		step++
	}
	if r < 2*rem { // odd folded rank: hand the result back to r-1
		for k := 0; k < x.pieces; k++ {
			if err := x.exchange(ctx, lastStep, k, r-1, x.part(dst, k), -1, nil); err != nil {
				return err
			}
		}
	}
	return nil
}
