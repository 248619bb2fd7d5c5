// Command gencsv writes a numeric CSV data set for benchmarks: rows of
// features drawn from N(0,1), printed with 6 significant digits (values like
// -1.23376), and a binary label from a hidden linear model.
//
//	go run ./scripts/gencsv -rows 2000000 -features 50 -o /tmp/big.csv   # about 854 MB
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
)

func main() {
	rows := flag.Int("rows", 2_000_000, "data rows")
	features := flag.Int("features", 50, "feature columns")
	seed := flag.Uint64("seed", 1, "random seed")
	out := flag.String("o", "", "output file (required)")
	flag.Parse()
	if *out == "" || *rows < 0 || *features < 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := write(*out, *rows, *features, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "gencsv:", err)
		os.Exit(1)
	}
}

func write(path string, rows, features int, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	r := rand.New(rand.NewPCG(seed, 2))
	wt := make([]float64, features)
	for j := range wt {
		wt[j] = r.NormFloat64()
	}
	for j := range features {
		fmt.Fprintf(w, "x%d,", j+1)
	}
	w.WriteString("y\n")
	var line []byte
	for range rows {
		line = line[:0]
		s := 0.0
		for j := range features {
			x := r.NormFloat64()
			s += wt[j] * x
			line = strconv.AppendFloat(line, x, 'g', 6, 64)
			line = append(line, ',')
		}
		if s+0.5*r.NormFloat64() > 0 {
			line = append(line, '1')
		} else {
			line = append(line, '0')
		}
		line = append(line, '\n')
		w.Write(line)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}
