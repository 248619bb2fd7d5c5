package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Resampling modes (train.yaml data.resample).
const (
	ResampleOver  = "over"  // every class repeated up to the largest class's count
	ResampleUnder = "under" // every class cut down to the smallest class's count
)

// MaxResampledRows bounds the rows of a resampled epoch (2^28: the epoch's
// sequence takes 8 bytes a row on every node).
const MaxResampledRows = 1 << 28

// A Resampler yields the global batches of class-balanced epochs, the same
// on every node and for any number of nodes. It needs only global
// information: the number of rows of each class in each virtual shard
// (ShardClassCounts, allreduced once at the start; they never change).
//
// Number the rows of class c, in global row order, j = 0..count_c-1: the
// j-th row of class c is the row at position j - cum_c(v) among the class-c
// rows of shard v, where cum_c(v) counts the class-c rows of the shards
// before v. Every node can tell which shard (and so which node) holds entry
// (c, j) from the counts alone; only the node that holds the shard, which
// has its labels, knows which row it is. Entries are numbered
// e = off_c + j, off_c = Σ_{c'<c} count_c'.
//
// Epoch e's sequence is drawn from (seed, e) alone. With m = the smallest
// count and M = the largest over the classes that have rows (K' of them):
//
//   - under: for each class, m distinct rows chosen uniformly (a partial
//     Fisher-Yates shuffle of 0..count_c-1); K'·m rows;
//   - over: for each class, all of its rows once, plus M - count_c drawn
//     uniformly with replacement (imbalanced-learn's RandomOverSampler);
//     K'·M rows;
//
// then the whole sequence is shuffled. Step k of the epoch uses entries
// [kB, (k+1)B) (B <= 0 or B >= the epoch's rows: all of them), so an epoch
// has ceil(rows/B) steps. A row drawn twice into one batch counts twice.
//
//	counts := make([]float64, s.Shards()*classes)
//	data.ShardClassCounts(s, tables, classes, counts) // then allreduce(sum) counts
//	r, err := data.NewResampler(seed, data.ResampleUnder, s, classes, counts, batch)
//	for step := range steps {
//		rows, err := r.Batch(step, held, part.OwnsShard) // this node's rows of the batch
//		err = held.Batch(rows, part.OwnsShard, &b)
//	}
//
// A Resampler keeps the current epoch's sequence and, for each held shard,
// its rows ordered by class (4 bytes a row, built when the shard's table is
// first seen, dropped when it is no longer held): Batch allocates only while
// those are built.
type Resampler struct {
	seed   uint64
	mode   string
	s      Sharding
	k      int
	counts []int // counts[v*k+c]: rows of class c in shard v
	seg    []int // seg[v*(k+1)+c]: where class c starts among shard v's rows ordered by class
	cum    []int // cum[c*(V+1)+v]: rows of class c in the shards before v
	off    []int // off[c]: the first entry of class c; off[k] = N
	take   int   // entries of each present class per epoch (m or M)
	rows   int   // entries per epoch
	batch  int   // B (the epoch's rows for a full batch)
	skip   func(row int) bool

	epoch   int
	seq     []int    // the current epoch's entries
	draw    []int    // scratch for the draws of one class
	order   []sorted // by shard: the held table's rows by class
	out     []int    // the global rows Batch returns
	scratch []int    // k counters
}

// sorted is a held table's local rows ordered by class, then by row.
type sorted struct {
	t    *Table
	rows []int32
}

// ShardClassCounts adds into counts (Shards()*classes long) the rows of
// each class in each table, counts[v*classes+c] for class c of shard v,
// leaving out the global rows for which skip is true (nil: none; e.g. a
// validation split, which must be a function of the row alone). Every table
// must be one virtual shard of s whose labels are class indices
// 0..classes-1 (after PrepareLabels). Summed over the nodes' tables
// (allreduce), they are the input of NewResampler, with the same skip.
func ShardClassCounts(s Sharding, tables []*Table, classes int, counts []float64, skip func(row int) bool) error {
	if len(counts) != s.Shards()*classes {
		panic(fmt.Sprintf("data: ShardClassCounts: %d counts for %d shards × %d classes", len(counts), s.Shards(), classes))
	}
	for _, t := range tables {
		v := s.ShardOfTable(t)
		if v < 0 {
			return fmt.Errorf("data: a table of rows %d..%d is not one virtual shard", t.First, t.First+t.Len()-1)
		}
		for i, y := range t.Y {
			if skip != nil && skip(t.First+i) {
				continue
			}
			if y < 0 || y >= float64(classes) || y != math.Trunc(y) {
				return fmt.Errorf("%s: label %v is not a class index (0..%d)", t.where(i), y, classes-1)
			}
			counts[v*classes+int(y)]++
		}
	}
	return nil
}

// NewResampler returns the resampled schedule (mode ResampleOver or
// ResampleUnder) of the rows of s but those for which skip is true (nil:
// none), whose class counts per shard are counts (see ShardClassCounts,
// with the same skip), with global batch size batch.
func NewResampler(seed uint64, mode string, s Sharding, classes int, counts []float64, batch int, skip func(row int) bool) (*Resampler, error) {
	V, K := s.Shards(), classes
	if mode != ResampleOver && mode != ResampleUnder {
		return nil, fmt.Errorf("resample: mode %q: want %s or %s", mode, ResampleOver, ResampleUnder)
	}
	if K < 1 || len(counts) != V*K {
		return nil, fmt.Errorf("resample: %d class counts for %d shards × %d classes", len(counts), V, K)
	}
	r := &Resampler{seed: seed, mode: mode, s: s, k: K, skip: skip, counts: make([]int, V*K), seg: make([]int, V*(K+1)),
		cum: make([]int, K*(V+1)), off: make([]int, K+1), epoch: -1, order: make([]sorted, V), scratch: make([]int, K)}
	total := make([]int, K)
	for v := range V {
		lo, hi := s.ShardRows(v)
		n := 0
		for c := range K {
			x := counts[v*K+c]
			if x < 0 || x != math.Trunc(x) || x > float64(hi-lo) {
				return nil, fmt.Errorf("resample: shard %d: %v rows of class %d is not a count of its %d rows", v, x, c, hi-lo)
			}
			r.counts[v*K+c] = int(x)
			r.seg[v*(K+1)+c] = n
			n += int(x)
			r.cum[c*(V+1)+v+1] = r.cum[c*(V+1)+v] + int(x)
			total[c] += int(x)
		}
		r.seg[v*(K+1)+K] = n
		if n > hi-lo || skip == nil && n != hi-lo {
			return nil, fmt.Errorf("resample: shard %d has %d rows, its class counts add up to %d", v, hi-lo, n)
		}
	}
	present, small, large := 0, math.MaxInt, 0
	for c, n := range total {
		r.off[c+1] = r.off[c] + n
		if n > 0 {
			present++
			small, large = min(small, n), max(large, n)
		}
	}
	if present == 0 {
		return nil, fmt.Errorf("resample: no rows")
	}
	r.take = small
	if mode == ResampleOver {
		r.take = large
	}
	if int64(r.take)*int64(present) > MaxResampledRows {
		return nil, fmt.Errorf("resample: an epoch of %d classes × %d rows is above the limit of %d rows (2^28)", present, r.take, MaxResampledRows)
	}
	r.rows = r.take * present
	r.batch = batch
	if batch <= 0 || batch >= r.rows {
		r.batch = r.rows
	}
	r.seq = make([]int, 0, r.rows)
	r.draw = make([]int, large)
	return r, nil
}

// EpochRows returns the rows of one resampled epoch: the classes that have
// rows times the smallest (under) or largest (over) class count.
func (r *Resampler) EpochRows() int { return r.rows }

// StepsPerEpoch returns ceil(EpochRows()/B), 1 for a full batch.
func (r *Resampler) StepsPerEpoch() int { return (r.rows + r.batch - 1) / r.batch }

// BatchSize returns B: the rows of every step but maybe an epoch's last.
func (r *Resampler) BatchSize() int { return r.batch }

// Entries returns the epoch and step within it of global step, and its
// batch as entries (see Resampler). The view is valid until the next call.
func (r *Resampler) Entries(step int) (epoch, k int, entries []int) {
	spe := r.StepsPerEpoch()
	epoch, k = step/spe, step%spe
	if epoch != r.epoch {
		r.drawEpoch(epoch)
	}
	return epoch, k, r.seq[k*r.batch : min((k+1)*r.batch, r.rows)]
}

// drawEpoch draws the sequence of epoch.
func (r *Resampler) drawEpoch(epoch int) {
	var src rand.PCG
	src.Seed(mix(r.seed^streamSample), uint64(epoch))
	r.seq = r.seq[:0]
	for c := range r.k {
		n := r.off[c+1] - r.off[c]
		if n == 0 {
			continue
		}
		d := r.draw[:n]
		for i := range d {
			d[i] = i
		}
		if r.mode == ResampleUnder {
			for i := range r.take { // partial Fisher-Yates: the first take are a uniform subset
				j := i + uniform(&src, uint64(n-i))
				d[i], d[j] = d[j], d[i]
			}
			d = d[:r.take]
		}
		for _, j := range d {
			r.seq = append(r.seq, r.off[c]+j)
		}
		if r.mode == ResampleOver {
			for range r.take - n {
				r.seq = append(r.seq, r.off[c]+uniform(&src, uint64(n)))
			}
		}
	}
	for i := len(r.seq) - 1; i > 0; i-- { // Fisher-Yates
		j := uniform(&src, uint64(i+1))
		r.seq[i], r.seq[j] = r.seq[j], r.seq[i]
	}
	r.epoch = epoch
}

// Batch returns the global rows of step's batch that h holds, each as many
// times as the batch draws it (in the batch's order; Held.Batch sorts them
// by shard and row). An entry in a shard that the node owns (owns(v)) but
// does not hold is an error, as in Held.Batch. The slice is valid until the
// next call.
func (r *Resampler) Batch(step int, h *Held, owns func(v int) bool) ([]int, error) {
	_, _, entries := r.Entries(step)
	r.out = r.out[:0]
	V := r.s.Shards()
	for v, o := range r.order { // let go of the shards no longer held
		if o.t != nil && h.tables[v] != o.t {
			r.order[v] = sorted{}
		}
	}
	for _, e := range entries {
		c := sort.SearchInts(r.off, e+1) - 1 // the last class starting at or before e
		j := e - r.off[c]
		cum := r.cum[c*(V+1) : (c+1)*(V+1)]
		v := sort.SearchInts(cum, j+1) - 1
		t := h.tables[v]
		if t == nil {
			if owns(v) {
				return nil, fmt.Errorf("data: resampled row %d of class %d is in shard %d, which this node owns but does not hold", j, c, v)
			}
			continue
		}
		o, err := r.sortedRows(v, t)
		if err != nil {
			return nil, err
		}
		r.out = append(r.out, t.First+int(o[r.seg[v*(r.k+1)+c]+j-cum[v]]))
	}
	return r.out, nil
}

// sortedRows returns the local rows of table t (shard v) ordered by class,
// built the first time t is seen. Its class counts must be those agreed on.
func (r *Resampler) sortedRows(v int, t *Table) ([]int32, error) {
	if o := r.order[v]; o.t == t {
		return o.rows, nil
	}
	K := r.k
	pos := r.scratch
	copy(pos, r.seg[v*(K+1):v*(K+1)+K])
	n := r.seg[v*(K+1)+K]
	rows, placed := make([]int32, n), 0
	for i, y := range t.Y {
		if r.skip != nil && r.skip(t.First+i) {
			continue
		}
		c := int(y)
		if y < 0 || c >= K || float64(c) != y || pos[c] == r.seg[v*(K+1)+c+1] {
			return nil, fmt.Errorf("%s: label %v: shard %d's labels differ from the class counts agreed at the start", t.where(i), y, v)
		}
		rows[pos[c]] = int32(i)
		pos[c]++
		placed++
	}
	if placed != n {
		return nil, fmt.Errorf("data: shard %d holds %d rows; the class counts agreed at the start say %d", v, placed, n)
	}
	r.order[v] = sorted{t: t, rows: rows}
	return rows, nil
}
