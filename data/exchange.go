package data

import (
	"context"
	"fmt"
	"sync"
)

// LocalGroup plays the exchange of n nodes in one process (an in-memory
// allreduce), for tests and tools that simulate several nodes: each rank's
// calls are summed round by round with the other ranks'. A rank that Leaves
// makes the rounds it never reached fail for the others, as a node that
// dies breaks a real ring.
//
//	g := data.NewLocalGroup(4)
//	go func() { src, err := data.Open(ctx, data.Spec{Paths: p, Rank: 2, Nodes: 4, Exchange: g.Exchange(2)}); g.Leave(2) }()
type LocalGroup struct {
	mu    sync.Mutex
	cond  *sync.Cond
	n     int
	calls []int       // rounds each rank has entered
	left  []bool      // ranks that will call no more
	sums  [][]float64 // by round
	in    []int       // by round: how many ranks have added their vector
}

// NewLocalGroup returns the group of n ranks.
func NewLocalGroup(n int) *LocalGroup {
	g := &LocalGroup{n: n, calls: make([]int, n), left: make([]bool, n)}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// Exchange returns rank r's Spec.Exchange.
func (g *LocalGroup) Exchange(r int) func(context.Context, []float64) error {
	return func(ctx context.Context, v []float64) error { return g.sum(ctx, r, v) }
}

// Leave says that rank r makes no more calls.
func (g *LocalGroup) Leave(r int) {
	g.mu.Lock()
	g.left[r] = true
	g.cond.Broadcast()
	g.mu.Unlock()
}

// gone reports a rank that left before it reached round k.
func (g *LocalGroup) gone(k int) (int, bool) {
	for r, l := range g.left {
		if l && g.calls[r] <= k {
			return r, true
		}
	}
	return 0, false
}

func (g *LocalGroup) sum(ctx context.Context, r int, v []float64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := g.calls[r]
	g.calls[r]++
	for len(g.sums) <= k {
		g.sums, g.in = append(g.sums, make([]float64, len(v))), append(g.in, 0)
	}
	if len(g.sums[k]) != len(v) {
		return fmt.Errorf("exchange %d: %d values, another rank gave %d", k, len(v), len(g.sums[k]))
	}
	for i, x := range v {
		g.sums[k][i] += x
	}
	g.in[k]++
	g.cond.Broadcast()
	if ctx.Done() != nil { // wake the waiters when ctx ends
		stop := context.AfterFunc(ctx, func() {
			g.mu.Lock()
			g.cond.Broadcast()
			g.mu.Unlock()
		})
		defer stop()
	}
	for g.in[k] < g.n {
		if err := ctx.Err(); err != nil {
			return err
		}
		if q, ok := g.gone(k); ok {
			return fmt.Errorf("exchange %d: rank %d left", k, q)
		}
		g.cond.Wait()
	}
	copy(v, g.sums[k])
	return nil
}
