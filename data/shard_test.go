package data

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

func TestAssignCoversEveryRowOnce(t *testing.T) {
	for _, rows := range []int{1, 5, 255, 256, 257, 1000} {
		s := NewSharding(rows, 0)
		if want := min(rows, DefaultShards); s.Shards() != want {
			t.Errorf("N=%d: %d shards, want %d", rows, s.Shards(), want)
		}
		maxShard := 0
		for v := range s.Shards() {
			lo, hi := s.ShardRows(v)
			maxShard = max(maxShard, hi-lo)
			for r := lo; r < hi; r++ {
				if s.ShardOf(r) != v {
					t.Fatalf("N=%d: ShardOf(%d) = %d, want %d", rows, r, s.ShardOf(r), v)
				}
			}
		}
		for n := 1; n <= 9; n++ {
			parts := s.Assign(n)
			owners := make([]int, rows)
			shardOwners := make([]int, s.Shards())
			lo, hi := rows, 0
			next := 0
			for r, p := range parts {
				if p.Rank != r || p.Nodes != n {
					t.Errorf("N=%d n=%d: part %d has rank %d of %d", rows, n, r, p.Rank, p.Nodes)
				}
				if p.FirstShard != next || p.FirstRow != s.start(p.FirstShard) || p.EndRow != s.start(p.EndShard) {
					t.Fatalf("N=%d n=%d: part %d = %+v does not follow shard %d", rows, n, r, p, next)
				}
				next = p.EndShard
				for row := range rows {
					if p.Owns(row) {
						owners[row]++
					}
				}
				shards := p.Shards()
				if len(shards) != p.EndShard-p.FirstShard || !slices.IsSorted(shards) {
					t.Errorf("N=%d n=%d: part %d: Shards() = %v, want %d..%d", rows, n, r, shards, p.FirstShard, p.EndShard-1)
				}
				for v := range s.Shards() {
					if p.OwnsShard(v) != slices.Contains(shards, v) {
						t.Errorf("N=%d n=%d: part %d: OwnsShard(%d) = %v, Shards() = %v", rows, n, r, v, p.OwnsShard(v), shards)
					}
					if p.OwnsShard(v) {
						shardOwners[v]++
					}
				}
				lo, hi = min(lo, p.Len()), max(hi, p.Len())
			}
			if next != s.Shards() {
				t.Errorf("N=%d n=%d: parts end at shard %d of %d", rows, n, next, s.Shards())
			}
			for row, k := range owners {
				if k != 1 {
					t.Fatalf("N=%d n=%d: row %d owned by %d nodes", rows, n, row, k)
				}
			}
			for v, k := range shardOwners {
				if k != 1 {
					t.Fatalf("N=%d n=%d: shard %d owned by %d nodes", rows, n, v, k)
				}
			}
			if hi-lo > maxShard {
				t.Errorf("N=%d n=%d: parts of %d..%d rows; want within one shard (%d rows)", rows, n, lo, hi, maxShard)
			}
		}
	}
}

func TestNoRows(t *testing.T) {
	s := NewSharding(0, 0)
	if s.Shards() != 0 {
		t.Errorf("no rows: %d shards", s.Shards())
	}
	for _, p := range s.Assign(3) {
		if p.Len() != 0 || p.Owns(0) || len(p.Shards()) != 0 {
			t.Errorf("part %+v of no rows", p)
		}
	}
	sched := NewSchedule(1, 0, 10)
	if _, _, b := sched.Batch(0); sched.StepsPerEpoch() != 0 || len(b) != 0 {
		t.Errorf("schedule of no rows: %d steps, batch %v", sched.StepsPerEpoch(), b)
	}
}

// isPerm reports whether p is a permutation of 0..len(p)-1.
func isPerm(p []int) bool {
	seen := make([]bool, len(p))
	for _, v := range p {
		if v < 0 || v >= len(p) || seen[v] {
			return false
		}
		seen[v] = true
	}
	return true
}

func TestPermutation(t *testing.T) {
	a := Permutation(7, 3, 1000, nil)
	if !isPerm(a) {
		t.Fatal("not a permutation")
	}
	b := Permutation(7, 3, 1000, make([]int, 1000))
	if !slices.Equal(a, b) {
		t.Error("same (seed, epoch) gave different permutations")
	}
	if slices.Equal(a, Permutation(7, 4, 1000, nil)) || slices.Equal(a, Permutation(8, 3, 1000, nil)) {
		t.Error("another epoch or seed gave the same permutation")
	}
	if n := testing.AllocsPerRun(10, func() { Permutation(7, 3, 1000, b) }); n != 0 {
		t.Errorf("Permutation: %v allocations with out given", n)
	}
	// Pin the stream: a change here changes every run's trajectory.
	if got := fmt.Sprint(Permutation(1, 0, 10, nil)); got != pinnedPerm {
		t.Errorf("Permutation(1, 0, 10) = %s, was %s", got, pinnedPerm)
	}
}

const pinnedPerm = "[0 9 5 4 1 7 2 6 8 3]"

func TestScheduleCoversEpoch(t *testing.T) {
	for _, c := range []struct{ rows, batch, steps int }{{10, 3, 4}, {10, 0, 1}, {10, 10, 1}, {10, 20, 1}, {9, 3, 3}} {
		s := NewSchedule(5, c.rows, c.batch)
		if s.StepsPerEpoch() != c.steps {
			t.Errorf("N=%d B=%d: %d steps per epoch, want %d", c.rows, c.batch, s.StepsPerEpoch(), c.steps)
		}
		for e := range 2 {
			var seen []int
			for k := range s.StepsPerEpoch() {
				epoch, kk, batch := s.Batch(e*s.StepsPerEpoch() + k)
				if epoch != e || kk != k {
					t.Errorf("step %d: epoch %d k %d, want %d %d", e*s.StepsPerEpoch()+k, epoch, kk, e, k)
				}
				want := c.batch
				if c.batch <= 0 || c.batch > c.rows || k == s.StepsPerEpoch()-1 {
					want = c.rows - k*c.batch
					if c.batch <= 0 || c.batch > c.rows {
						want = c.rows
					}
				}
				if len(batch) != want {
					t.Errorf("N=%d B=%d step %d: batch of %d, want %d", c.rows, c.batch, k, len(batch), want)
				}
				seen = append(seen, batch...)
			}
			if !isPerm(seen) {
				t.Errorf("N=%d B=%d epoch %d: batches %v do not cover the rows once", c.rows, c.batch, e, seen)
			}
		}
	}
}

func TestBatchPartitionsTheBatch(t *testing.T) {
	ctx := context.Background()
	spec := SyntheticSpec{Task: TaskRegression, Samples: 1000, Features: 2, Seed: 1}
	whole, err := Synthetic(spec, 0, spec.Samples, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		shards int
		f32    bool
	}{
		{"default shards", 0, false},
		{"7 shards", 7, false},
		{"float32", 16, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			src, err := NewSynthetic(spec, c.shards, c.f32)
			if err != nil {
				t.Fatal(err)
			}
			s := src.Sharding()
			sched := NewSchedule(3, s.Rows(), 100)
			_, _, batch := sched.Batch(4)
			want := slices.Sorted(slices.Values(batch))
			xbuf := make([]float64, spec.Features)
			for n := 1; n <= 5; n++ {
				var got []int
				for _, p := range s.Assign(n) {
					h, err := ReadPart(ctx, src, p)
					if err != nil {
						t.Fatal(err)
					}
					var b Batch
					if err := h.Batch(batch, p.OwnsShard, &b); err != nil {
						t.Fatalf("n=%d rank %d: %v", n, p.Rank, err)
					}
					prev, count := -1, 0
					for _, g := range b.Groups {
						if len(g.Rows) == 0 {
							t.Errorf("n=%d rank %d: an empty group of shard %d", n, p.Rank, s.ShardOfTable(g.T))
						}
						if v := s.ShardOfTable(g.T); v < 0 || !p.OwnsShard(v) || !h.Has(v) {
							t.Errorf("n=%d rank %d: a group of table %d+%d, not a held shard of the part", n, p.Rank, g.T.First, g.T.Len())
						}
						for _, i := range g.Rows {
							row := g.T.First + i
							if i < 0 || i >= g.T.Len() {
								t.Fatalf("n=%d rank %d: local row %d of a table of %d rows", n, p.Rank, i, g.T.Len())
							}
							if row <= prev {
								t.Errorf("n=%d rank %d: row %d after row %d: not in row order", n, p.Rank, row, prev)
							}
							prev = row
							if x := g.T.RowTo(i, xbuf); !closeTo(x, whole.Row(row), c.f32) || g.T.Y[i] != whole.Y[row] {
								t.Errorf("n=%d rank %d: row %d is %v %v, want %v %v", n, p.Rank, row, x, g.T.Y[i], whole.Row(row), whole.Y[row])
							}
							got = append(got, row)
							count++
						}
					}
					if b.Len() != count {
						t.Errorf("n=%d rank %d: Len() = %d, groups hold %d rows", n, p.Rank, b.Len(), count)
					}
					if a := testing.AllocsPerRun(10, func() { h.Batch(batch, p.OwnsShard, &b) }); a != 0 {
						t.Errorf("n=%d rank %d: Batch: %v allocations once warmed up", n, p.Rank, a)
					}
				}
				slices.Sort(got) // nodes in rank order: already sorted, unless a node strays
				if !slices.Equal(got, want) {
					t.Errorf("n=%d: the nodes' rows of the batch %v, want %v", n, got, want)
				}
			}
		})
	}
}

// closeTo compares a row read back with the float64 row it was made from:
// exactly, or as float32 when f32 is set.
func closeTo(got, want []float64, f32 bool) bool {
	if len(got) != len(want) {
		return false
	}
	for j := range got {
		w := want[j]
		if f32 {
			w = float64(float32(w))
		}
		if got[j] != w {
			return false
		}
	}
	return true
}

func TestBatchMissingShard(t *testing.T) {
	ctx := context.Background()
	spec := SyntheticSpec{Task: TaskRegression, Samples: 1000, Features: 2, Seed: 1}
	src, err := NewSynthetic(spec, 16, false)
	if err != nil {
		t.Fatal(err)
	}
	s := src.Sharding()
	p := s.Part(0, 2)
	h, err := ReadPart(ctx, src, p)
	if err != nil {
		t.Fatal(err)
	}
	owned := p.FirstRow + 3  // in the part's first shard
	other := p.EndRow + 5    // owned by rank 1
	lost := s.ShardOf(owned) // dropped below
	kept := p.EndRow - 1     // in the part's last shard, still held
	h.Keep(func(v int) bool { return v != lost })
	var b Batch
	if err := h.Batch([]int{kept, owned}, p.OwnsShard, &b); err == nil {
		t.Errorf("Batch: no error for row %d of shard %d, owned but not held", owned, lost)
	}
	// A row of a shard the part does not own is not the node's: no error.
	if err := h.Batch([]int{other, kept}, p.OwnsShard, &b); err != nil {
		t.Errorf("Batch with a row of another node: %v", err)
	} else if b.Len() != 1 || len(b.Groups) != 1 || b.Groups[0].T.First+b.Groups[0].Rows[0] != kept {
		t.Errorf("Batch with a row of another node: %d rows in %d groups, want row %d alone", b.Len(), len(b.Groups), kept)
	}
	// An empty batch clears the groups of the last one.
	if err := h.Batch(nil, p.OwnsShard, &b); err != nil || b.Len() != 0 || len(b.Groups) != 0 {
		t.Errorf("empty batch: %d rows in %d groups, err %v", b.Len(), len(b.Groups), err)
	}
}
