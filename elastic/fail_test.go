package elastic_test

import (
	"context"
	"errors"
	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/elastic/elastictest"
	"strings"
	"testing"
	"time"

	"github.com/dmlrun/dmlrun/ring"
)

// TestHugeVector allreduces 200 MiB of float32 over 3 ranks (not divisible
// into equal blocks) and spot-checks the result.
func TestHugeVector(t *testing.T) {
	if testing.Short() {
		t.Skip("200 MiB per rank")
	}
	const n, length = 3, 50<<20 + 7
	comms := elastictest.Comms(t, n, elastictest.Config())
	bufs := make([][]float32, n)
	errs := elastictest.Parallel(comms, func(c *elastic.Comm) error {
		buf := make([]float32, length)
		for i := 0; i < length; i += 4099 {
			buf[i] = float32(c.Rank() + 1)
		}
		buf[length-1] = float32(c.Rank() * 10)
		bufs[c.Rank()] = buf
		return elastic.AllReduce(context.Background(), c, ring.Sum, buf, buf)
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for r := range n {
		b := bufs[r]
		for i := 0; i < length-1; i += 4099 {
			if b[i] != 6 || b[i+1] != 0 {
				t.Fatalf("rank %d: [%d] = %v, [%d] = %v", r, i, b[i], i+1, b[i+1])
			}
		}
		if b[length-1] != 30 {
			t.Fatalf("rank %d: last = %v", r, b[length-1])
		}
	}
}

// TestSilentRankTCP: one of three ranks never joins the collective; the other
// two fail by their deadline with an error that names a peer rank and the
// step, and later calls on the broken communicator fail at once.
func TestSilentRankTCP(t *testing.T) {
	comms := elastictest.Comms(t, 3, elastictest.Config())
	const deadline = 400 * time.Millisecond
	start := time.Now()
	errs := elastictest.Parallel(comms, func(c *elastic.Comm) error {
		if c.Rank() == 2 {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		buf := make([]float64, 1<<20)
		return c.AllReduce(ctx, ring.Sum, buf)
	})
	if el := time.Since(start); el > deadline+3*time.Second {
		t.Fatalf("took %v with a %v deadline", el, deadline)
	}
	for r, err := range errs[:2] {
		if err == nil {
			t.Fatalf("rank %d succeeded without rank 2", r)
		}
		if !strings.Contains(err.Error(), "rank ") || !strings.Contains(err.Error(), "step ") {
			t.Fatalf("rank %d: error %q names no peer or step", r, err)
		}
	}
	if !errors.Is(errors.Join(errs...), context.DeadlineExceeded) {
		t.Fatalf("no rank reports the deadline: %v", errs)
	}
	if err := comms[0].Barrier(context.Background()); err == nil {
		t.Fatal("a broken communicator still works")
	}
}

// TestRankClosesMidCollective: a rank closes its communicator while the
// others are in a large allreduce; they fail at once, long before the
// deadline.
func TestRankClosesMidCollective(t *testing.T) {
	comms := elastictest.Comms(t, 4, elastictest.Config())
	started := make(chan struct{})
	start := time.Now()
	errs := elastictest.Parallel(comms, func(c *elastic.Comm) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c.Rank() == 1 {
			<-started
			return c.Close()
		}
		buf := make([]float32, 32<<20)
		if c.Rank() == 0 {
			close(started)
		}
		for range 50 {
			if err := elastic.AllReduce(ctx, c, ring.Sum, buf, buf); err != nil {
				return err
			}
		}
		return nil
	})
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("survivors took %v to notice", el)
	}
	for _, r := range []int{0, 2, 3} {
		if errs[r] == nil {
			t.Fatalf("rank %d finished 50 allreduces without rank 1", r)
		}
	}
}
