package data

import (
	"compress/gzip"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

// The loader's memory promise: opening a data set keeps only where every
// virtual shard starts, and reading shards allocates the tables' values and
// little else (mapped windows, no copy of the file's bytes, no per-row
// objects). These tests count the bytes allocated (MemStats.TotalAlloc, which
// counts every allocation, also what is garbage at once), not what is live.

const (
	memRows     = 100_000
	memFeatures = 20
	// memSlack is the allocation allowed on top of the tables: per-goroutine
	// buffers and bookkeeping, plus what the runtime and the testing
	// package may allocate in the background while we count.
	memSlack = 8 << 20
	// memTableFactor bounds the allocation relative to the tables' values.
	memTableFactor = 1.25
	// memIndexPerShard is what the index pass may allocate per virtual
	// shard: rowAfterMark reads from the mark before a shard's first row
	// (at most 63 rows) through an 8 KiB buffer, garbage at once.
	memIndexPerShard = 8<<10 + 512
)

// memCSV returns rows rows of features N(0,1) printed with 6 significant
// digits ('g', so some with exponents) and a 0/1 label y, with a header.
func memCSV(rows, features int) []byte {
	b := make([]byte, 0, rows*(features*10+2))
	for j := range features {
		b = append(b, "x"+strconv.Itoa(j)+","...)
	}
	b = append(b, "y\n"...)
	r := rand.New(rand.NewPCG(7, 8))
	for range rows {
		for range features {
			b = strconv.AppendFloat(b, r.NormFloat64(), 'g', 6, 64)
			b = append(b, ',')
		}
		b = append(b, byte('0'+r.IntN(2)), '\n')
	}
	return b
}

// memWriteFile writes text into dir/name (gzip-compressed, fast, when name
// ends in .gz) and returns its path and its size on disk.
func memWriteFile(tb testing.TB, dir, name string, text []byte) (string, int64) {
	tb.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	var w io.Writer = f
	var zw *gzip.Writer
	if gzipped(name) {
		zw, _ = gzip.NewWriterLevel(f, gzip.BestSpeed)
		w = zw
	}
	if _, err := w.Write(text); err != nil {
		tb.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return path, fi.Size()
}

// memAllocated returns the bytes allocated while f runs, after a GC (so
// that no sweep of earlier garbage is pending).
func memAllocated(f func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// memLive returns the heap bytes that stay live after f runs (its result
// must be kept reachable by the caller until after the call).
func memLive(f func()) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

func memTablesBytes(ts []*Table) (bytes int64, rows int) {
	for _, t := range ts {
		bytes += t.Bytes()
		rows += t.Len()
	}
	return bytes, rows
}

// TestLoadMemoryBound: on a file of 100,000 rows × 20 features (18.5 MB),
// Open keeps less than 0.1% of the file's size + 1 MiB live and allocates
// less than 1% of it + 1 MiB, beside what does not grow with the file's
// bytes (see memIndexPerShard; for gzip, the marks of every row); ReadShards
// of a quarter of the shards (a contiguous Part, and the scattered shards of
// one member of a Spread) and of all allocates at most 1.25 × the tables'
// Bytes() + 8 MiB, and at most 1/8 of them + 1 MiB (gzip: 4 MiB) beyond
// them, for float64 and float32 tables and for a gzip file.
func TestLoadMemoryBound(t *testing.T) {
	dir := t.TempDir()
	text := memCSV(memRows, memFeatures)
	plain, plainSize := memWriteFile(t, dir, "mem.csv", text)
	gz, gzSize := memWriteFile(t, dir, "mem.csv.gz", text)
	text = nil
	t.Logf("%s: %d rows × %d features, %.1f MB (gzip %.1f MB)", filepath.Base(plain), memRows, memFeatures, float64(plainSize)/1e6, float64(gzSize)/1e6)
	ctx := context.Background()

	for _, tc := range []struct {
		name string
		path string
		f32  bool
	}{
		{"float64", plain, false},
		{"float32", plain, true},
		{"gzip", gz, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := Spec{Paths: []string{tc.path}, Label: "y", Float32: tc.f32}
			var src Source
			var err error
			openAlloc := memAllocated(func() { src, err = Open(ctx, spec) })
			if err != nil {
				t.Fatal(err)
			}
			var again Source
			openLive := memLive(func() { again, err = Open(ctx, spec) })
			if err != nil {
				t.Fatal(err)
			}
			runtime.KeepAlive(again)
			if src.Rows() != memRows {
				t.Fatalf("%d rows, want %d", src.Rows(), memRows)
			}
			t.Logf("Open: %d bytes allocated (%.3f%% of the %d-byte CSV), %d live", openAlloc, 100*float64(openAlloc)/float64(plainSize), plainSize, openLive)
			if live := int64(plainSize/1000) + 1<<20; openLive > live {
				t.Errorf("Open keeps %d bytes live, want at most %d (0.1%% of the %d-byte file + 1 MiB)", openLive, live, plainSize)
			}
			// What Open allocates on the way: at most 1% of the file's bytes
			// + 1 MiB, plus what does not grow with the file's bytes. For a
			// plain file, a 64 KiB read buffer per shard that does not start
			// on a mark (rowAfterMark). A gzip file cannot seek, so the index
			// marks every row until the shard offsets are known: 8 bytes a
			// row, grown by append (up to about 5 × that allocated in all),
			// and three 1 MiB buffers (the header's and the scan's buffered
			// reader, the scan block).
			limit := uint64(plainSize/100) + 1<<20
			if gzipped(tc.path) {
				limit += 6*8*memRows + 3<<20
			} else {
				limit += uint64(src.Sharding().Shards()) * memIndexPerShard
			}
			if openAlloc > limit {
				t.Errorf("Open allocated %d bytes, want at most %d (1%% of the %d-byte file + 1 MiB + what does not grow with it)", openAlloc, limit, plainSize)
			}

			s := src.Sharding()
			spread := s.Spread([]string{"h1/0", "h1/1", "h2/0", "h2/1"})
			for _, part := range []struct {
				name   string
				shards []int
			}{
				{"Part(1, 4)", s.Part(1, 4).Shards()},
				{"Spread[2] of 4", spread[2].Shards()},
				{"every shard", s.Part(0, 1).Shards()},
			} {
				var tables []*Table
				alloc := memAllocated(func() { tables, err = src.ReadShards(ctx, part.shards) })
				if err != nil {
					t.Fatal(err)
				}
				tb, rows := memTablesBytes(tables)
				want := int64(rows * (memFeatures + 1) * 8) // X and Y
				if tc.f32 {
					want = int64(rows*memFeatures*4 + rows*8) // X32 and Y
				}
				if tb != want {
					t.Fatalf("%s: the tables' Bytes() = %d, want %d for %d rows", part.name, tb, want, rows)
				}
				beyond := int64(alloc) - tb
				t.Logf("%s: %d shards, %d rows: %d bytes allocated, tables %d: %+d beyond (%.1f bytes a row)",
					part.name, len(part.shards), rows, alloc, tb, beyond, float64(beyond)/float64(rows))
				if bound := memTableFactor*float64(tb) + memSlack; float64(alloc) > bound {
					t.Errorf("%s: ReadShards allocated %d bytes for tables of %d: more than %.2f × + %d MiB = %.0f",
						part.name, alloc, tb, memTableFactor, memSlack>>20, bound)
				}
				// Tighter, on what lies beyond the tables: the size-class
				// rounding of their slices (at most 1/8) and, per file read,
				// buffers: none for a plain file (mapped windows), a 1 MiB
				// read and a 1 MiB parse buffer and the inflater for gzip.
				// A copy of the shards' bytes (about 185 bytes a row here)
				// would break it.
				extra := int64(1 << 20)
				if gzipped(tc.path) {
					extra = 4 << 20
				}
				if bound := tb/8 + extra; beyond > bound {
					t.Errorf("%s: ReadShards allocated %d bytes beyond the tables' %d, want at most 1/8 of them + %d MiB = %d",
						part.name, beyond, tb, extra>>20, bound)
				}
				runtime.KeepAlive(tables)
			}
		})
	}
}

// BenchmarkLoadShare reads one node's share of a 100,000 × 20 file, the
// shards of Part(1, 4), and reports the bytes allocated per row read, in
// all and beyond the tables' values (B/row, extraB/row).
func BenchmarkLoadShare(b *testing.B) {
	for _, f32 := range []bool{false, true} {
		name := "float64"
		if f32 {
			name = "float32"
		}
		b.Run(name, func(b *testing.B) {
			path, _ := memWriteFile(b, b.TempDir(), "share.csv", memCSV(memRows, memFeatures))
			ctx := context.Background()
			src, err := Open(ctx, Spec{Paths: []string{path}, Label: "y", Float32: f32})
			if err != nil {
				b.Fatal(err)
			}
			shards := src.Sharding().Part(1, 4).Shards()
			ts := src.(*textSource)
			var shardBytes int64
			for _, v := range shards {
				shardBytes += ts.ShardBytes(v)
			}
			b.SetBytes(shardBytes)
			b.ReportAllocs()
			var tableBytes int64
			var rows int
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for b.Loop() {
				tables, err := src.ReadShards(ctx, shards)
				if err != nil {
					b.Fatal(err)
				}
				tb, n := memTablesBytes(tables)
				tableBytes += tb
				rows += n
			}
			runtime.ReadMemStats(&after)
			alloc := float64(after.TotalAlloc - before.TotalAlloc)
			b.ReportMetric(alloc/float64(rows), "B/row")
			b.ReportMetric((alloc-float64(tableBytes))/float64(rows), "extraB/row")
		})
	}
}
