package data

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// writeBenchCSV writes rows rows of features N(0,1) values printed with 6
// significant digits (like -1.23376) and a 0/1 label, and returns its path
// and size.
func writeBenchCSV(tb testing.TB, rows, features int) (string, int64) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "bench.csv")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for j := range features {
		w.WriteString("x" + strconv.Itoa(j+1) + ",")
	}
	w.WriteString("y\n")
	r := rand.New(rand.NewPCG(1, 2))
	var line []byte
	for range rows {
		line = line[:0]
		for range features {
			line = strconv.AppendFloat(line, r.NormFloat64(), 'g', 6, 64)
			line = append(line, ',')
		}
		line = append(line, byte('0'+r.IntN(2)), '\n')
		w.Write(line)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	fi, _ := f.Stat()
	f.Close()
	return path, fi.Size()
}

// BenchmarkCSV measures the index pass and the parse of every shard of a
// 100,000 × 50 file, with all of GOMAXPROCS: MB/s, and ns per value per
// core (-cpu 1 gives one core).
func BenchmarkCSV(b *testing.B) {
	const rows, features = 100_000, 50
	path, size := writeBenchCSV(b, rows, features)
	ctx := context.Background()
	b.Run("index", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := Open(ctx, Spec{Paths: []string{path}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	src, err := Open(ctx, Spec{Paths: []string{path}})
	if err != nil {
		b.Fatal(err)
	}
	all := src.Sharding().Part(0, 1).Shards()
	b.Run("parse", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := src.ReadShards(ctx, all); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(rows*(features+1)), "ns/value")
	})
}
