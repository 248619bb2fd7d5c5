package ring

import (
	"context"
	"fmt"
	"slices"
)

// Algorithm selects how AllReduce runs.
type Algorithm uint8

const (
	// Auto picks recursive doubling for vectors of at most Options.SmallBytes
	// bytes and the pipelined ring above that, as MPICH and Open MPI do.
	Auto Algorithm = iota
	// Ring forces reduce-scatter + allgather around the ring: bandwidth-optimal.
	Ring
	// RecursiveDoubling forces log2(n) rounds of pairwise exchange of the
	// whole vector: latency-optimal.
	RecursiveDoubling
)

func (a Algorithm) String() string {
	switch a {
	case Auto:
		return "auto"
	case Ring:
		return "ring"
	case RecursiveDoubling:
		return "rd"
	}
	return "algorithm?"
}

// ParseAlgorithm turns "auto", "ring" or "rd" into an Algorithm.
func ParseAlgorithm(s string) (Algorithm, error) {
	for _, a := range []Algorithm{Auto, Ring, RecursiveDoubling} {
		if a.String() == s {
			return a, nil
		}
	}
	return 0, fmt.Errorf("unknown algorithm %q (want auto, ring or rd)", s)
}

// Options tune a Comm. The zero value is ready to use.
type Options struct {
	// ChunkBytes is the pipelining unit: every segment moves in pieces of at
	// most this size, so that sending, receiving and reducing overlap.
	// 0 means 1 MiB, the best size measured on loopback (64 KiB pieces cost a
	// third of the bandwidth in per-piece wakeups; 4 MiB gained nothing).
	ChunkBytes int
	// SmallBytes is the largest allreduce that uses recursive doubling under
	// Auto. 0 means 64 KiB: below it log2(n) rounds beat the ring's 2(n-1)
	// hops; above it the ring's smaller messages win.
	SmallBytes int
	// Algorithm forces an allreduce algorithm; Auto chooses by size.
	Algorithm Algorithm
	// Tracer, when set, is told where every collective and its phases
	// begin and end (a timeline). nil costs nothing.
	Tracer Tracer
}

const (
	defaultChunkBytes = 1 << 20
	defaultSmallBytes = 64 << 10
)

// Comm runs collectives for one rank of a group of size ranks over a Peer.
// Every rank must call the same collectives in the same order with vectors of
// the same length. A Comm is not safe for concurrent use, and after a
// collective fails the streams to its peers are out of step: build a new Peer
// and Comm.
type Comm struct {
	peer       Peer
	rank, size int
	opts       Options
	seq        uint64
	tmp        []float64 // scratch for one received piece; float64 keeps it aligned
}

// New returns a Comm for rank (0 <= rank < size) that talks through p.
func New(p Peer, rank, size int, opts Options) *Comm {
	if size < 1 || rank < 0 || rank >= size {
		panic(fmt.Sprintf("ring.New: rank %d out of range for size %d", rank, size))
	}
	if opts.ChunkBytes <= 0 {
		opts.ChunkBytes = defaultChunkBytes
	}
	opts.ChunkBytes = (opts.ChunkBytes + 7) &^ 7
	if opts.SmallBytes <= 0 {
		opts.SmallBytes = defaultSmallBytes
	}
	return &Comm{peer: p, rank: rank, size: size, opts: opts, tmp: make([]float64, opts.ChunkBytes/8)}
}

// Rank is this Comm's rank, from 0 to Size()-1.
func (c *Comm) Rank() int { return c.rank }

// Size is the number of ranks.
func (c *Comm) Size() int { return c.size }

// Segment returns the half-open element range [lo, hi) of block i when a
// vector of length elements is cut into size nearly equal blocks. Blocks differ
// in length by at most one element; ReduceScatter leaves block r on rank r and
// AllGather expects rank r to fill block r.
func Segment(length, size, i int) (lo, hi int) {
	return int(int64(i) * int64(length) / int64(size)), int(int64(i+1) * int64(length) / int64(size))
}

// run is one collective in progress: it tags every exchange with the
// collective's sequence number and a piece index, and wraps errors with the
// collective's name and step.
type run struct {
	c      *Comm
	name   string
	seq    uint64
	es     int // element size in bytes
	piece  int // bytes per piece, a multiple of es
	pieces int // pieces per step, the same on every rank
}

func (c *Comm) start(name string, es, stepBytes int) *run {
	c.seq++
	piece := c.opts.ChunkBytes / es * es
	k := (stepBytes + piece - 1) / piece
	if k < 1 {
		k = 1 // even an empty step exchanges one header, keeping ranks in step
	}
	return &run{c: c, name: name, seq: c.seq, es: es, piece: piece, pieces: k}
}

// part returns piece k of seg, empty when seg is shorter than that.
func (x *run) part(seg []byte, k int) []byte {
	lo := k * x.piece
	if lo >= len(seg) {
		return seg[len(seg):]
	}
	return seg[lo:min(len(seg), lo+x.piece)]
}

// exchange runs piece k of schedule step s.
func (x *run) exchange(ctx context.Context, s, k, to int, send []byte, from int, recv []byte) error {
	tag := uint32(s*x.pieces + k)
	if err := x.c.peer.Exchange(ctx, to, send, from, recv, x.seq, tag); err != nil {
		return fmt.Errorf("%s #%d step %d (rank %d of %d): %w", x.name, x.seq, s, x.c.rank, x.c.size, err)
	}
	return nil
}

// scratch returns the reusable receive buffer cut to n bytes.
func (x *run) scratch(n int) []byte {
	return asBytes(x.c.tmp)[:n]
}

// seg returns block i (taken modulo size) of an L-element vector as a byte range.
func (x *run) seg(buf []byte, length, i int) []byte {
	n := x.c.size
	i = ((i % n) + n) % n
	lo, hi := Segment(length, n, i)
	return buf[lo*x.es : hi*x.es]
}

// maxSegBytes is the byte length of the longest block.
func maxSegBytes(length, size, es int) int {
	return (length + size - 1) / size * es
}

// Links lists the ranks that rank exchanges data with in some collective of a
// size-rank group: its ring neighbours and its recursive-doubling partners.
// The relation is symmetric, so both ends of a link agree it exists.
func Links(rank, size int) []int {
	if size < 2 {
		return nil
	}
	set := map[int]bool{(rank + 1) % size: true, (rank - 1 + size) % size: true}
	pof2 := 1
	for pof2*2 <= size {
		pof2 *= 2
	}
	rem := size - pof2
	newrank := rank - rem
	if rank < 2*rem {
		if rank%2 == 0 {
			set[rank+1] = true
			newrank = -1
		} else {
			set[rank-1] = true
			newrank = rank / 2
		}
	}
	for mask := 1; newrank >= 0 && mask < pof2; mask <<= 1 {
		pn := newrank ^ mask
		if pn < rem {
			set[pn*2+1] = true
		} else {
			set[pn+rem] = true
		}
	}
	delete(set, rank)
	out := make([]int, 0, len(set))
	for r := range set {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}
