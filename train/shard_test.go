package train

import (
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
			lo, hi := rows, 0
			next := 0
			for r, p := range parts {
				if p.FirstShard != next || p.FirstRow != s.start(p.FirstShard) || p.EndRow != s.start(p.EndShard) {
					t.Fatalf("N=%d n=%d: part %d = %+v does not follow shard %d", rows, n, r, p, next)
				}
				next = p.EndShard
				for row := range rows {
					if p.Owns(row) {
						owners[row]++
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
			if hi-lo > maxShard {
				t.Errorf("N=%d n=%d: parts of %d..%d rows; want within one shard (%d rows)", rows, n, lo, hi, maxShard)
			}
		}
	}
}

func TestNoRows(t *testing.T) {
	s := NewSharding(0, 0)
	for _, p := range s.Assign(3) {
		if p.Len() != 0 || p.Owns(0) {
			t.Errorf("part %+v of no rows", p)
		}
	}
	sched := NewSchedule(1, 0, 10)
	if _, _, b := sched.Batch(0); sched.StepsPerEpoch() != 0 || len(b) != 0 {
		t.Errorf("schedule of no rows: %d steps, batch %v", sched.StepsPerEpoch(), b)
	}
}

func isPermutation(p []int) bool {
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
	if !isPermutation(a) {
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
			if !isPermutation(seen) {
				t.Errorf("N=%d B=%d epoch %d: batches %v do not cover the rows once", c.rows, c.batch, e, seen)
			}
		}
	}
}

func TestLocalRowsPartitionTheBatch(t *testing.T) {
	spec := SyntheticSpec{Task: TaskRegression, Samples: 1000, Features: 2, Seed: 1}
	s := NewSharding(spec.NumRows(), 0)
	sched := NewSchedule(3, s.Rows(), 100)
	_, _, batch := sched.Batch(4)
	for n := 1; n <= 5; n++ {
		var got []int
		for _, p := range s.Assign(n) {
			tab, err := Synthetic(spec, p.Owns)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]int, 0, len(batch))
			local, err := p.LocalRows(tab, batch, buf)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.IsSorted(local) {
				t.Errorf("n=%d rank %d: local rows %v not in row order", n, p.Rank, local)
			}
			for _, i := range local {
				got = append(got, tab.Rows[i])
			}
			if a := testing.AllocsPerRun(10, func() { p.LocalRows(tab, batch, buf) }); a != 0 {
				t.Errorf("LocalRows: %v allocations", a)
			}
		}
		want := slices.Sorted(slices.Values(batch))
		if !slices.Equal(got, want) {
			t.Errorf("n=%d: the nodes' rows of the batch %v, want %v", n, got, want)
		}
	}
	// A table missing a row that the part owns is an error.
	p := s.Part(0, 2)
	tab, _ := Synthetic(spec, func(r int) bool { return p.Owns(r) && r != batch[0] })
	if _, err := p.LocalRows(tab, []int{batch[0]}, nil); err == nil && p.Owns(batch[0]) {
		t.Error("LocalRows: no error for a row missing from the table")
	}
}
