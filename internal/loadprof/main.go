package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/dmlrun/dmlrun/data"
)

func main() {
	rank := flag.Int("rank", 0, "")
	n := flag.Int("n", 4, "")
	prof := flag.String("prof", "", "")
	flag.Parse()
	if *prof != "" {
		f, _ := os.Create(*prof)
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()
	t0 := time.Now()
	src, err := data.Open(ctx, data.Spec{Paths: flag.Args(), Label: "y"})
	if err != nil {
		panic(err)
	}
	t1 := time.Now()
	h, err := data.ReadPart(ctx, src, src.Sharding().Part(*rank, *n))
	if err != nil {
		panic(err)
	}
	t2 := time.Now()
	fmt.Println("index", t1.Sub(t0), "read", t2.Sub(t1), "rows", h.Len())
}
