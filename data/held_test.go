package data

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

// heldShards returns the shards h holds, ascending, checking that every table
// is exactly one shard.
func heldShards(t *testing.T, h *Held) []int {
	t.Helper()
	s := h.Sharding()
	var v []int
	for _, tab := range h.Tables() {
		k := s.ShardOfTable(tab)
		if k < 0 {
			t.Fatalf("held table of rows %d+%d is not a shard", tab.First, tab.Len())
		}
		if !h.Has(k) {
			t.Errorf("Has(%d) is false for a held table", k)
		}
		v = append(v, k)
	}
	if !slices.IsSorted(v) {
		t.Errorf("Tables() not in shard order: shards %v", v)
	}
	return v
}

func TestHeldRingChange(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		rows, shards int
	}{{1000, 0}, {1000, 16}, {10, 0}, {3, 0}} {
		spec := SyntheticSpec{Task: TaskBinary, Samples: c.rows, Features: 2, Seed: 11}
		src, err := NewSynthetic(spec, c.shards, false)
		if err != nil {
			t.Fatal(err)
		}
		s := src.Sharding()
		for r := range 4 {
			for nr := range 3 {
				t.Run(fmt.Sprintf("N=%d V=%d rank %d of 4 to %d of 3", c.rows, s.Shards(), r, nr), func(t *testing.T) {
					old, next := s.Part(r, 4), s.Part(nr, 3)
					h, err := ReadPart(ctx, src, old)
					if err != nil {
						t.Fatal(err)
					}
					if got := heldShards(t, h); !slices.Equal(got, old.Shards()) || h.Len() != old.Len() {
						t.Fatalf("ReadPart: shards %v (%d rows), want %v (%d rows)", got, h.Len(), old.Shards(), old.Len())
					}
					before := map[int]*Table{}
					for _, tab := range h.Tables() {
						before[s.ShardOfTable(tab)] = tab
					}

					h.Keep(next.OwnsShard)
					var kept []int
					for _, v := range old.Shards() {
						if next.OwnsShard(v) {
							kept = append(kept, v)
						}
					}
					if got := heldShards(t, h); !slices.Equal(got, kept) {
						t.Errorf("after Keep: shards %v, want %v", got, kept)
					}
					var wantMissing []int
					for _, v := range next.Shards() {
						if !old.OwnsShard(v) {
							wantMissing = append(wantMissing, v)
						}
					}
					missing := h.Missing(next.OwnsShard)
					if !slices.Equal(missing, wantMissing) {
						t.Errorf("Missing: %v, want %v", missing, wantMissing)
					}
					tables, err := src.ReadShards(ctx, missing)
					if err != nil {
						t.Fatal(err)
					}
					if err := h.Add(tables); err != nil {
						t.Fatal(err)
					}
					if got := heldShards(t, h); !slices.Equal(got, next.Shards()) {
						t.Errorf("after Add: shards %v, want %v", got, next.Shards())
					}
					if h.Len() != next.Len() {
						t.Errorf("after Add: Len %d, want the part's %d rows", h.Len(), next.Len())
					}
					if m := h.Missing(next.OwnsShard); len(m) != 0 {
						t.Errorf("after Add: still missing %v", m)
					}
					for _, tab := range h.Tables() { // the kept shards were not read again
						if v := s.ShardOfTable(tab); old.OwnsShard(v) && before[v] != tab {
							t.Errorf("shard %d was replaced, not kept", v)
						}
					}
				})
			}
		}
	}
}

func TestHeldAddRejectsNonShards(t *testing.T) {
	spec := SyntheticSpec{Task: TaskRegression, Samples: 100, Features: 2, Seed: 3}
	s := NewSharding(spec.Samples, 10) // shards of 10 rows
	for _, c := range []struct {
		name        string
		first, rows int
		ok          bool
	}{
		{"shard 0", 0, 10, true},
		{"shard 9", 90, 10, true},
		{"part of a shard", 10, 5, false},
		{"a shard and a row", 20, 11, false},
		{"two shards", 30, 20, false},
		{"off the shard boundary", 35, 10, false},
		{"no rows", 40, 0, false},
		{"whole data set", 0, 100, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := NewHeld(s)
			tab, err := Synthetic(spec, c.first, c.rows, false)
			if err != nil {
				t.Fatal(err)
			}
			err = h.Add([]*Table{tab})
			if c.ok != (err == nil) {
				t.Errorf("Add(rows %d+%d): error %v, want ok %v", c.first, c.rows, err, c.ok)
			}
			if !c.ok && (h.Len() != 0 || len(h.Tables()) != 0) {
				t.Errorf("Add(rows %d+%d) failed but holds %d rows", c.first, c.rows, h.Len())
			}
		})
	}
	// Rows past the end: not a shard.
	h := NewHeld(s)
	if err := h.Add([]*Table{NewTable("x", []string{"a"}, 100, 5, false)}); err == nil {
		t.Error("Add of rows 100..104 of 100: no error")
	}
	// Adding a shard again replaces it and counts its rows once.
	a, _ := Synthetic(spec, 10, 10, false)
	b, _ := Synthetic(spec, 10, 10, true)
	if err := h.Add([]*Table{a, b}); err != nil {
		t.Fatal(err)
	}
	if h.Len() != 10 || len(h.Tables()) != 1 || h.Tables()[0] != b {
		t.Errorf("shard 1 added twice: %d rows in %d tables", h.Len(), len(h.Tables()))
	}
}

func TestHeldBytes(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		f32   bool
		bytes int64 // per row, with 3 features
	}{
		{"float64", false, 3*8 + 8},
		{"float32", true, 3*4 + 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := SyntheticSpec{Task: TaskRegression, Samples: 1000, Features: 3, Seed: 2}
			src, err := NewSynthetic(spec, 16, c.f32)
			if err != nil {
				t.Fatal(err)
			}
			s := src.Sharding()
			h := NewHeld(s)
			if h.Bytes() != 0 {
				t.Errorf("empty Held: %d bytes", h.Bytes())
			}
			p := s.Part(1, 3)
			h, err = ReadPart(ctx, src, p)
			if err != nil {
				t.Fatal(err)
			}
			if want := int64(p.Len()) * c.bytes; h.Bytes() != want {
				t.Errorf("%d rows: %d bytes, want %d", p.Len(), h.Bytes(), want)
			}
			var sum int64
			for _, tab := range h.Tables() {
				sum += tab.Bytes()
				if tab.Bytes() != int64(tab.Len())*c.bytes {
					t.Errorf("table of %d rows: %d bytes, want %d", tab.Len(), tab.Bytes(), int64(tab.Len())*c.bytes)
				}
			}
			if sum != h.Bytes() {
				t.Errorf("Bytes %d, tables sum to %d", h.Bytes(), sum)
			}
			h.Keep(func(v int) bool { return v == p.FirstShard })
			lo, hi := s.ShardRows(p.FirstShard)
			if want := int64(hi-lo) * c.bytes; h.Bytes() != want {
				t.Errorf("after Keep of one shard of %d rows: %d bytes, want %d", hi-lo, h.Bytes(), want)
			}
		})
	}
}
