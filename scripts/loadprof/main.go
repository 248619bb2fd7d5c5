// Command loadprof profiles the data path: n simulated nodes in one
// process open a data set together and each reads its shards, as `dmlrun
// -np n` would, under a CPU profile.
//
//	go run ./scripts/loadprof -n 4 -prof cpu.prof big.csv
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/dmlrun/dmlrun/data"
)

func main() {
	n := flag.Int("n", 4, "simulated nodes")
	prof := flag.String("prof", "", "write a CPU profile here")
	flag.Parse()
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			panic(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ex := newExchange(*n)
	var wg sync.WaitGroup
	start := time.Now()
	for r := range *n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			t0 := time.Now()
			src, err := data.Open(ctx, data.Spec{Paths: flag.Args(), Rank: r, Nodes: *n, Exchange: ex.forRank(r)})
			if err != nil {
				panic(err)
			}
			t1 := time.Now()
			names := make([]string, *n)
			for i := range names {
				names[i] = fmt.Sprint("h/", i)
			}
			tables, err := src.ReadShards(ctx, src.Sharding().Spread(names)[r].Shards())
			if err != nil {
				panic(err)
			}
			rows := 0
			for _, t := range tables {
				rows += t.Len()
			}
			fmt.Println("rank", r, "index", t1.Sub(t0).Round(time.Millisecond), "parse", time.Since(t1).Round(time.Millisecond), "rows", rows)
		}()
	}
	wg.Wait()
	fmt.Println("all", time.Since(start).Round(time.Millisecond))
}

// exchange sums vectors over n goroutines (an in-memory allreduce).
type exchange struct {
	mu    sync.Mutex
	cond  *sync.Cond
	n     int
	round []int
	sums  [][]float64
	seen  []int
}

func newExchange(n int) *exchange {
	e := &exchange{n: n, round: make([]int, n)}
	e.cond = sync.NewCond(&e.mu)
	return e
}

func (e *exchange) forRank(r int) func(context.Context, []float64) error {
	return func(_ context.Context, v []float64) error {
		e.mu.Lock()
		defer e.mu.Unlock()
		k := e.round[r]
		e.round[r]++
		for len(e.sums) <= k {
			e.sums, e.seen = append(e.sums, nil), append(e.seen, 0)
		}
		if e.sums[k] == nil {
			e.sums[k] = make([]float64, len(v))
		}
		for i, x := range v {
			e.sums[k][i] += x
		}
		e.seen[k]++
		e.cond.Broadcast()
		for e.seen[k] < e.n {
			e.cond.Wait()
		}
		copy(v, e.sums[k])
		return nil
	}
}
