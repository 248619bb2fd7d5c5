package data

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// imbalanced returns n labels of k classes, class c drawn with weight
// 1/(c+1)^2 (class 0 the majority), as one-shard tables of a sharding of
// shards shards.
func imbalanced(seed uint64, n, k, shards int) (Sharding, []*Table, []float64) {
	r := rand.New(rand.NewPCG(seed, 5))
	var wsum float64
	for c := range k {
		wsum += 1 / float64((c+1)*(c+1))
	}
	y := make([]float64, n)
	for i := range y {
		u := r.Float64() * wsum
		for c := range k {
			u -= 1 / float64((c+1)*(c+1))
			if u < 0 || c == k-1 {
				y[i] = float64(c)
				break
			}
		}
	}
	s := NewSharding(n, shards)
	tables := make([]*Table, s.Shards())
	for v := range tables {
		lo, hi := s.ShardRows(v)
		tables[v] = NewTable("test", []string{"x"}, lo, hi-lo, false)
		copy(tables[v].Y, y[lo:hi])
		for i := range tables[v].X {
			tables[v].X[i] = float64(lo + i)
		}
	}
	return s, tables, y
}

// byClass is the reference numbering of entries: the rows of class 0 in
// row order, then those of class 1, and so on, without the skipped ones.
func byClass(y []float64, k int, skip func(int) bool) []int {
	var rows []int
	for c := range k {
		for i, yi := range y {
			if int(yi) == c && (skip == nil || !skip(i)) {
				rows = append(rows, i)
			}
		}
	}
	return rows
}

func countsOf(t *testing.T, s Sharding, tables []*Table, k int, skip func(int) bool) []float64 {
	t.Helper()
	counts := make([]float64, s.Shards()*k)
	if err := ShardClassCounts(s, tables, k, counts, skip); err != nil {
		t.Fatal(err)
	}
	return counts
}

// TestResamplerEpochs checks each epoch's rows against the definition: under,
// every class present m times, no row twice; over, every class M times and
// every row at least once. Epochs differ, and a schedule built again draws
// the same ones.
func TestResamplerEpochs(t *testing.T) {
	const n, k = 997, 4
	s, tables, y := imbalanced(1, n, k, 16)
	ref := byClass(y, k, nil)
	count := make([]int, k)
	for _, yi := range y {
		count[int(yi)]++
	}
	small, large := slices.Min(count), slices.Max(count)
	if small < 10 || large < 5*small {
		t.Fatalf("class counts %v: not the imbalance the test wants", count)
	}
	for _, mode := range []string{ResampleUnder, ResampleOver} {
		t.Run(mode, func(t *testing.T) {
			take := small
			if mode == ResampleOver {
				take = large
			}
			r, err := NewResampler(9, mode, s, k, countsOf(t, s, tables, k, nil), 50, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.EpochRows() != k*take || r.StepsPerEpoch() != (k*take+49)/50 {
				t.Fatalf("%d rows in %d steps, want %d in %d", r.EpochRows(), r.StepsPerEpoch(), k*take, (k*take+49)/50)
			}
			again, _ := NewResampler(9, mode, s, k, countsOf(t, s, tables, k, nil), 50, nil)
			var prev []int
			for epoch := range 3 {
				var seq []int
				for st := range r.StepsPerEpoch() {
					e, kk, entries := r.Entries(epoch*r.StepsPerEpoch() + st)
					if e != epoch || kk != st {
						t.Fatalf("step %d: epoch %d step %d", epoch*r.StepsPerEpoch()+st, e, kk)
					}
					_, _, same := again.Entries(epoch*r.StepsPerEpoch() + st)
					if !slices.Equal(entries, same) {
						t.Fatalf("epoch %d step %d: another resampler draws other entries", epoch, st)
					}
					seq = append(seq, entries...)
				}
				times := map[int]int{}
				perClass := make([]int, k)
				for _, e := range seq {
					row := ref[e]
					times[row]++
					perClass[int(y[row])]++
				}
				for c := range k {
					if perClass[c] != take {
						t.Errorf("epoch %d: class %d drawn %d times, want %d", epoch, c, perClass[c], take)
					}
				}
				for row := range n {
					switch {
					case mode == ResampleUnder && times[row] > 1:
						t.Fatalf("epoch %d: row %d drawn %d times under-sampling", epoch, row, times[row])
					case mode == ResampleOver && times[row] == 0:
						t.Fatalf("epoch %d: row %d (class %v) left out over-sampling", epoch, row, y[row])
					case mode == ResampleOver && int(y[row]) == slices.Index(count, large) && times[row] != 1:
						t.Fatalf("epoch %d: row %d of the largest class drawn %d times", epoch, row, times[row])
					}
				}
				if slices.Equal(seq, prev) {
					t.Errorf("epoch %d draws the sequence of epoch %d", epoch, epoch-1)
				}
				prev = seq
			}
		})
	}
}

// TestResamplerSameForAnyN: the rows each node picks of a batch, together,
// are the batch's entries mapped through the reference numbering, for 1 to 5
// nodes (and for more nodes than some shards hold rows); with skipped rows
// (a validation split) too, which no batch holds.
func TestResamplerSameForAnyN(t *testing.T) {
	const n, k = 503, 3
	s, tables, y := imbalanced(2, n, k, 32)
	for _, skip := range []func(int) bool{nil, func(row int) bool { return row%7 == 3 }} {
		ref := byClass(y, k, skip)
		counts := countsOf(t, s, tables, k, skip)
		for _, mode := range []string{ResampleUnder, ResampleOver} {
			for nodes := 1; nodes <= 5; nodes++ {
				t.Run(fmt.Sprint(mode, nodes, skip != nil), func(t *testing.T) {
					parts := s.Assign(nodes)
					held := make([]*Held, nodes)
					rs := make([]*Resampler, nodes)
					for i, p := range parts {
						held[i] = NewHeld(s)
						for v := p.FirstShard; v < p.EndShard; v++ {
							held[i].Add([]*Table{tables[v]})
						}
						var err error
						if rs[i], err = NewResampler(3, mode, s, k, counts, 64, skip); err != nil {
							t.Fatal(err)
						}
					}
					for step := range 2*rs[0].StepsPerEpoch() + 1 {
						_, _, entries := rs[0].Entries(step)
						var want []int
						for _, e := range entries {
							want = append(want, ref[e])
						}
						var got []int
						for i, p := range parts {
							rows, err := rs[i].Batch(step, held[i], p.OwnsShard)
							if err != nil {
								t.Fatal(err)
							}
							for _, row := range rows {
								if !p.Owns(row) || skip != nil && skip(row) {
									t.Fatalf("step %d: node %d got row %d, which it does not own or skips", step, i, row)
								}
							}
							got = append(got, rows...)
						}
						slices.Sort(got)
						slices.Sort(want)
						if !slices.Equal(got, want) {
							t.Fatalf("step %d: the nodes' rows %v, want %v", step, got, want)
						}
					}
				})
			}
		}
	}
}

func TestResamplerFullBatchAndAllocs(t *testing.T) {
	s, tables, _ := imbalanced(3, 400, 2, 8)
	counts := countsOf(t, s, tables, 2, nil)
	r, err := NewResampler(1, ResampleUnder, s, 2, counts, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.StepsPerEpoch() != 1 || r.BatchSize() != r.EpochRows() {
		t.Fatalf("full batch: %d steps of %d rows, epoch %d rows", r.StepsPerEpoch(), r.BatchSize(), r.EpochRows())
	}
	_, _, a := r.Entries(0)
	a = slices.Clone(a)
	_, _, b := r.Entries(1)
	if slices.Equal(a, b) {
		t.Error("full-batch under-sampling draws the same rows every epoch")
	}
	h := NewHeld(s)
	h.Add(tables)
	owns := func(int) bool { return true }
	step := 0
	if _, err := r.Batch(step, h, owns); err != nil { // builds the sorted rows
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() {
		step++ // a new epoch every step: the draws reuse their buffers
		if _, err := r.Batch(step, h, owns); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Batch: %v allocations per step", n)
	}
}

func TestResamplerErrors(t *testing.T) {
	s, tables, _ := imbalanced(4, 100, 2, 4)
	counts := countsOf(t, s, tables, 2, nil)
	for _, c := range []struct {
		name   string
		mode   string
		counts []float64
		want   string
	}{
		{"mode", "smote", counts, `mode "smote"`},
		{"length", ResampleOver, counts[:3], "3 class counts for 4 shards × 2 classes"},
		{"negative", ResampleOver, append([]float64{-1, 26}, counts[2:]...), "-1 rows of class 0"},
		{"sum", ResampleOver, append([]float64{1, 1}, counts[2:]...), "shard 0 has 25 rows, its class counts add up to 2"},
		{"empty", ResampleOver, make([]float64, 8), "has 25 rows, its class counts add up to 0"},
	} {
		if _, err := NewResampler(1, c.mode, s, 2, c.counts, 10, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// A shard whose labels changed since the counts were agreed.
	r, err := NewResampler(1, ResampleOver, s, 2, counts, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHeld(s)
	lo, hi := s.ShardRows(1)
	changed := NewTable("test", []string{"x"}, lo, hi-lo, false)
	for i, y := range tables[1].Y {
		changed.Y[i] = 1 - y
	}
	h.Add([]*Table{tables[0], changed, tables[2], tables[3]})
	if _, err := r.Batch(0, h, func(int) bool { return true }); err == nil || !strings.Contains(err.Error(), "shard 1's labels differ from the class counts") {
		t.Errorf("changed labels: %v", err)
	}
	// A shard owned but not held.
	h = NewHeld(s)
	h.Add(tables[1:])
	if _, err := r.Batch(0, h, func(int) bool { return true }); err == nil || !strings.Contains(err.Error(), "owns but does not hold") {
		t.Errorf("owned, not held: %v", err)
	}
	bad := NewTable("test", []string{"x"}, 0, 25, false)
	bad.Y[3] = 2
	if err := ShardClassCounts(s, []*Table{bad}, 2, make([]float64, 8), nil); err == nil || !strings.Contains(err.Error(), "label 2 is not a class index (0..1)") {
		t.Errorf("ShardClassCounts with label 2 of 2 classes: %v", err)
	}
}
