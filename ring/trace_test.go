package ring

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// spanLog is a Tracer that writes down what it is told, checking that
// spans nest.
type spanLog struct {
	open []Span
	log  []string
	bad  []string
}

func (l *spanLog) Begin(s Span) {
	l.open = append(l.open, s)
	l.log = append(l.log, "+"+s.String())
}

func (l *spanLog) End(s Span, seq uint64, err error) {
	if len(l.open) == 0 || l.open[len(l.open)-1] != s {
		l.bad = append(l.bad, fmt.Sprintf("End(%v) with %v open", s, l.open))
	} else {
		l.open = l.open[:len(l.open)-1]
	}
	e := fmt.Sprintf("-%v#%d", s, seq)
	if err != nil {
		e += "!"
	}
	l.log = append(l.log, e)
}

// traceRanks runs f on every rank of an n-rank memNet, each rank with its
// own spanLog, and returns the logs and errors.
func traceRanks(n int, opts Options, setup func(p *memPeer), f func(c *Comm) error) ([]*spanLog, []error) {
	net := newMemNet(n)
	logs := make([]*spanLog, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		p := &memPeer{net: net, rank: r}
		if setup != nil {
			setup(p)
		}
		logs[r] = &spanLog{}
		o := opts
		o.Tracer = logs[r]
		c := New(p, r, n, o)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[r] = f(c); errs[r] != nil {
				net.close(r)
			}
		}()
	}
	wg.Wait()
	return logs, errs
}

// TestTracerSpans: every collective reports its spans, nested, with the
// collective's sequence number, the same on every rank.
func TestTracerSpans(t *testing.T) {
	ctx := ctxT(t)
	for _, tc := range []struct {
		name string
		n    int
		opts Options
		run  func(c *Comm) error
		want string // every rank's log
	}{
		{"ring allreduce", 3, Options{Algorithm: Ring, ChunkBytes: 64}, func(c *Comm) error {
			v := make([]float64, 100)
			return AllReduce(ctx, c, Sum, v, v)
		}, "+allreduce +reduce-scatter -reduce-scatter#1 +allgather -allgather#1 -allreduce#1"},
		{"small allreduce", 4, Options{}, func(c *Comm) error {
			v := make([]float32, 10)
			return AllReduce(ctx, c, Max, v, v)
		}, "+allreduce +recursive doubling -recursive doubling#1 -allreduce#1"},
		{"every collective in turn", 5, Options{}, func(c *Comm) error {
			v := make([]float64, 11)
			if _, _, err := ReduceScatter(ctx, c, Sum, v); err != nil {
				return err
			}
			if err := AllGather(ctx, c, v); err != nil {
				return err
			}
			if err := Broadcast(ctx, c, 2, v); err != nil {
				return err
			}
			return c.Barrier(ctx)
		}, "+reduce-scatter -reduce-scatter#1 +allgather -allgather#2 +broadcast -broadcast#3 +barrier -barrier#4"},
		{"nothing to exchange is not reported", 3, Options{}, func(c *Comm) error {
			return AllReduce(ctx, c, Sum, []float64{}, []float64{})
		}, ""},
		{"one rank is not reported", 1, Options{}, func(c *Comm) error {
			v := []float64{1}
			if err := AllReduce(ctx, c, Sum, v, v); err != nil {
				return err
			}
			return c.Barrier(ctx)
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs, errs := traceRanks(tc.n, tc.opts, nil, tc.run)
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			for r, l := range logs {
				if got := strings.Join(l.log, " "); got != tc.want || len(l.bad) > 0 || len(l.open) > 0 {
					t.Errorf("rank %d: %q (bad %v, open %v), want %q", r, got, l.bad, l.open, tc.want)
				}
			}
		})
	}
}

// TestTracerOnFailure: a collective that fails still ends every span it
// began, with the error.
func TestTracerOnFailure(t *testing.T) {
	ctx := ctxT(t)
	for _, algo := range []Algorithm{Ring, RecursiveDoubling} {
		t.Run(algo.String(), func(t *testing.T) {
			logs, errs := traceRanks(4, Options{Algorithm: algo, ChunkBytes: 64}, func(p *memPeer) {
				if p.rank == 2 {
					p.failAfter = 3
				}
			}, func(c *Comm) error {
				v := make([]float64, 200)
				return AllReduce(ctx, c, Sum, v, v)
			})
			if errs[2] == nil {
				t.Fatal("the injected failure did not fail rank 2")
			}
			for r, l := range logs {
				if len(l.bad) > 0 || len(l.open) > 0 {
					t.Errorf("rank %d: bad %v, open %v: %v", r, l.bad, l.open, l.log)
				}
				last := l.log[len(l.log)-1]
				if failed := strings.HasSuffix(last, "!"); failed != (errs[r] != nil) || !strings.HasPrefix(last, "-allreduce") {
					t.Errorf("rank %d (err %v): last span %q", r, errs[r], last)
				}
				if errs[r] != nil && !slices.ContainsFunc(l.log[1:len(l.log)-1], func(s string) bool { return strings.HasSuffix(s, "!") }) {
					t.Errorf("rank %d: the failed phase has no error: %v", r, l.log)
				}
			}
		})
	}
}

// quietTracer counts calls and records nothing, for the cost of the calls
// themselves.
type quietTracer struct{ begins, ends int }

func (q *quietTracer) Begin(Span)              { q.begins++ }
func (q *quietTracer) End(Span, uint64, error) { q.ends++ }

// allocsPerAllReduce measures the heap allocations of one 2-rank ring
// allreduce over the test network, which copies every message.
func allocsPerAllReduce(t *testing.T, tr0, tr1 Tracer) float64 {
	net := newMemNet(2)
	c0 := New(&memPeer{net: net, rank: 0}, 0, 2, Options{Tracer: tr0, Algorithm: Ring})
	c1 := New(&memPeer{net: net, rank: 1}, 1, 2, Options{Tracer: tr1, Algorithm: Ring})
	v0, v1 := make([]float64, 64), make([]float64, 64)
	ctx := context.Background()
	start, done := make(chan struct{}), make(chan error)
	go func() {
		for range start {
			done <- AllReduce(ctx, c1, Sum, v1, v1)
		}
	}()
	defer close(start)
	return testing.AllocsPerRun(50, func() {
		start <- struct{}{}
		if err := AllReduce(ctx, c0, Sum, v0, v0); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestTracerAddsNoAllocation: a tracer's calls add no allocation to a
// collective's own (the test network's copies).
func TestTracerAddsNoAllocation(t *testing.T) {
	without := allocsPerAllReduce(t, nil, nil)
	q0, q1 := &quietTracer{}, &quietTracer{}
	with := allocsPerAllReduce(t, q0, q1)
	if q0.begins == 0 || q0.begins != q0.ends || q1.begins != q1.ends {
		t.Fatalf("tracer calls: %+v %+v", q0, q1)
	}
	if with > without {
		t.Errorf("%.1f allocations per allreduce with a tracer, %.1f without", with, without)
	}
}
