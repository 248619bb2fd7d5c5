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
	g := data.NewLocalGroup(*n)
	var wg sync.WaitGroup
	start := time.Now()
	for r := range *n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			t0 := time.Now()
			src, err := data.Open(ctx, data.Spec{Paths: flag.Args(), Rank: r, Nodes: *n, Exchange: g.Exchange(r)})
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
