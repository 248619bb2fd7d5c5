package data

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sort"
)

// DefaultShards is the number of virtual shards when none is given.
const DefaultShards = 256

// Sharding cuts rows 0..N-1 into V contiguous virtual shards: shard s covers
// rows [s*N/V, (s+1)*N/V). V is fixed for a run and does not depend on the
// number of nodes; nodes own whole shards.
type Sharding struct {
	rows, shards int
}

// NewSharding returns the sharding of rows rows into shards virtual shards
// (shards <= 0: DefaultShards), never more shards than rows.
//
//	s := data.NewSharding(src.Rows(), 0)
//	part := s.Part(rank, nodes)                        // this node's shards and rows
//	tables, err := src.ReadShards(ctx, part.Shards()) // parse only those
func NewSharding(rows, shards int) Sharding {
	if shards <= 0 {
		shards = DefaultShards
	}
	rows = max(rows, 0)
	return Sharding{rows: rows, shards: min(shards, rows)}
}

// Rows returns N, the number of rows.
func (s Sharding) Rows() int { return s.rows }

// Shards returns V, the number of virtual shards.
func (s Sharding) Shards() int { return s.shards }

// start returns the first row of shard v; start(V) = N.
func (s Sharding) start(v int) int {
	if s.shards == 0 {
		return 0
	}
	return v * s.rows / s.shards
}

// ShardRows returns the rows [lo, hi) of shard v.
func (s Sharding) ShardRows(v int) (lo, hi int) { return s.start(v), s.start(v + 1) }

// ShardOf returns the shard that holds row.
func (s Sharding) ShardOf(row int) int {
	if row < 0 || row >= s.rows {
		panic(fmt.Sprintf("data: ShardOf(%d): rows are 0..%d", row, s.rows-1))
	}
	v := row * s.shards / s.rows
	for v+1 < s.shards && s.start(v+1) <= row {
		v++
	}
	for v > 0 && s.start(v) > row {
		v--
	}
	return v
}

// Part is what one node owns: the shards [FirstShard, EndShard), which cover
// the rows [FirstRow, EndRow). A node of a ring with more nodes than shards
// may own nothing.
type Part struct {
	Rank, Nodes          int
	FirstShard, EndShard int
	FirstRow, EndRow     int
}

// Owns reports whether the part holds global row.
func (p Part) Owns(row int) bool { return row >= p.FirstRow && row < p.EndRow }

// OwnsShard reports whether the part holds virtual shard v.
func (p Part) OwnsShard(v int) bool { return v >= p.FirstShard && v < p.EndShard }

// Shards returns the part's virtual shards, ascending.
func (p Part) Shards() []int {
	s := make([]int, 0, p.EndShard-p.FirstShard)
	for v := p.FirstShard; v < p.EndShard; v++ {
		s = append(s, v)
	}
	return s
}

// Len returns the number of rows of the part.
func (p Part) Len() int { return p.EndRow - p.FirstRow }

// Part returns what node rank of nodes owns: a contiguous run of shards,
// balanced by rows (each cut is the shard boundary nearest to rank*N/nodes).
func (s Sharding) Part(rank, nodes int) Part {
	if nodes < 1 || rank < 0 || rank >= nodes {
		panic(fmt.Sprintf("data: Part(%d, %d): want 0 <= rank < nodes", rank, nodes))
	}
	lo, hi := s.cut(rank, nodes), s.cut(rank+1, nodes)
	return Part{Rank: rank, Nodes: nodes, FirstShard: lo, EndShard: hi, FirstRow: s.start(lo), EndRow: s.start(hi)}
}

// Assign returns the parts of all nodes, by rank. Every row and every shard
// belongs to exactly one part.
func (s Sharding) Assign(nodes int) []Part {
	parts := make([]Part, nodes)
	for r := range parts {
		parts[r] = s.Part(r, nodes)
	}
	return parts
}

// cut returns the shard where the part of rank r begins: the shard boundary
// nearest to the row r*N/n (the lower one on a tie).
func (s Sharding) cut(r, n int) int {
	if r == 0 || s.shards == 0 {
		return 0
	}
	if r == n {
		return s.shards
	}
	target := r * s.rows // compared with start(v)*n, to stay in integers
	v := sort.Search(s.shards+1, func(v int) bool { return s.start(v)*n >= target })
	if v > 0 && target-s.start(v-1)*n <= s.start(v)*n-target {
		v--
	}
	return v
}

// StepsPerEpoch returns ceil(rows/batch), or 1 for a full batch (batch <= 0 or
// batch >= rows), or 0 without rows.
func StepsPerEpoch(rows, batch int) int {
	switch {
	case rows <= 0:
		return 0
	case batch <= 0 || batch >= rows:
		return 1
	}
	return (rows + batch - 1) / batch
}

// Permutation writes into out a permutation of 0..n-1 drawn from (seed, epoch)
// alone and returns out[:n]. It allocates only if out is shorter than n.
func Permutation(seed uint64, epoch, n int, out []int) []int {
	if cap(out) < n {
		out = make([]int, n)
	}
	out = out[:n]
	for i := range out {
		out[i] = i
	}
	var src rand.PCG
	src.Seed(mix(seed^streamPerm), uint64(epoch))
	for i := n - 1; i > 0; i-- { // Fisher-Yates
		j := uniform(&src, uint64(i+1))
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// uniform returns a uniform integer in [0, n) (Lemire's method, unbiased).
func uniform(src *rand.PCG, n uint64) int {
	hi, lo := bits.Mul64(src.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(src.Uint64(), n)
		}
	}
	return int(hi)
}

// Schedule yields the global batch of every step: step k of epoch e uses rows
// P_e[kB : min((k+1)B, N)], P_e = Permutation(seed, e, N). With B <= 0 (or
// B >= N) every step is one full batch of all rows. A Schedule keeps the
// permutation of the current epoch, so Batch does not allocate.
type Schedule struct {
	seed        uint64
	rows, batch int
	perm        []int
	epoch       int // the epoch whose permutation perm holds
}

// NewSchedule returns the schedule of rows rows with global batch size batch.
//
//	sched := data.NewSchedule(cfg.Seed, s.Rows(), cfg.Training.BatchSize)
//	for step := start; step < steps; step++ {
//		epoch, k, batch := sched.Batch(step)
//		...
//	}
func NewSchedule(seed uint64, rows, batch int) *Schedule {
	rows = max(rows, 0)
	if batch <= 0 || batch >= rows {
		batch = 0
	}
	s := &Schedule{seed: seed, rows: rows, batch: batch, perm: make([]int, rows), epoch: -1}
	if batch == 0 {
		for i := range s.perm {
			s.perm[i] = i
		}
	}
	return s
}

// StepsPerEpoch returns the number of steps in one epoch.
func (s *Schedule) StepsPerEpoch() int { return StepsPerEpoch(s.rows, s.batch) }

// Batch returns the epoch and the step within it of global step (counting
// from 0), and its batch of global row indices. The batch is a view that is
// valid until the next call.
func (s *Schedule) Batch(step int) (epoch, k int, batch []int) {
	spe := s.StepsPerEpoch()
	if spe == 0 {
		return 0, 0, nil
	}
	epoch, k = step/spe, step%spe
	if s.batch == 0 {
		return epoch, k, s.perm
	}
	if epoch != s.epoch {
		Permutation(s.seed, epoch, s.rows, s.perm)
		s.epoch = epoch
	}
	return epoch, k, s.perm[k*s.batch : min((k+1)*s.batch, s.rows)]
}

// ShardOfTable returns the shard that table t covers exactly, or -1 if it
// covers anything else.
func (s Sharding) ShardOfTable(t *Table) int {
	if t.First < 0 || t.First >= s.rows {
		return -1
	}
	v := s.ShardOf(t.First)
	if lo, hi := s.ShardRows(v); lo != t.First || hi-lo != t.Len() {
		return -1
	}
	return v
}
