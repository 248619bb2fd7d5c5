package data

import (
	"context"
	"sync"
)

// LocalExchanges returns Spec.Exchange functions for n simulated nodes in
// one process, one per rank: each call sums its vector with the calls of
// the other ranks in the same round and returns when all n have called (an
// in-memory allreduce). For tests and tools that play several nodes.
//
//	ex := data.LocalExchanges(4)
//	go data.Open(ctx, data.Spec{Paths: p, Rank: 2, Nodes: 4, Exchange: ex[2]})
func LocalExchanges(n int) []func(context.Context, []float64) error {
	g := &localGroup{n: n, round: make([]int, n)}
	g.cond = sync.NewCond(&g.mu)
	fns := make([]func(context.Context, []float64) error, n)
	for r := range fns {
		fns[r] = func(ctx context.Context, v []float64) error { return g.sum(ctx, r, v) }
	}
	return fns
}

type localGroup struct {
	mu    sync.Mutex
	cond  *sync.Cond
	n     int
	round []int       // calls made by each rank
	sums  [][]float64 // by round
	seen  []int       // by round: how many ranks have added their vector
}

func (g *localGroup) sum(ctx context.Context, r int, v []float64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := g.round[r]
	g.round[r]++
	for len(g.sums) <= k {
		g.sums, g.seen = append(g.sums, nil), append(g.seen, 0)
	}
	if g.sums[k] == nil {
		g.sums[k] = make([]float64, len(v))
	}
	for i, x := range v {
		g.sums[k][i] += x
	}
	g.seen[k]++
	g.cond.Broadcast()
	if ctx.Done() != nil { // wake the waiters when ctx ends
		stop := context.AfterFunc(ctx, func() {
			g.mu.Lock()
			g.cond.Broadcast()
			g.mu.Unlock()
		})
		defer stop()
	}
	for g.seen[k] < g.n {
		if err := ctx.Err(); err != nil {
			return err
		}
		g.cond.Wait()
	}
	copy(v, g.sums[k])
	return nil
}
