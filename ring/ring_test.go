package ring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lengths covers 0, 1, shorter than n, not divisible by n, and several pieces.
func lengths(n int) []int {
	return []int{0, 1, 2, n - 1, n, n + 1, 2*n + 3, 97, 1000, 4099}
}

// inputs makes per-rank vectors of small integers, so that any summation order
// gives the exact result and the ring can be compared with a naive sum.
func inputs[T Float](n, length int, seed uint64) [][]T {
	rng := rand.New(rand.NewPCG(seed, uint64(n*1000+length)))
	in := make([][]T, n)
	for r := range in {
		in[r] = make([]T, length)
		for i := range in[r] {
			in[r][i] = T(rng.IntN(201) - 100)
		}
	}
	return in
}

// naive is the dumb reference: reduce rank by rank in order.
func naive[T Float](op Op, in [][]T) []T {
	out := append([]T(nil), in[0]...)
	for _, v := range in[1:] {
		for i, x := range v {
			switch op {
			case Sum:
				out[i] += x
			case Min:
				out[i] = min(out[i], x)
			case Max:
				out[i] = max(out[i], x)
			}
		}
	}
	return out
}

var smallPieces = Options{ChunkBytes: 64} // many pieces per step even for short vectors

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestAllReduceMatchesNaive(t *testing.T) {
	t.Parallel()
	for n := 1; n <= 9; n++ {
		for _, algo := range []Algorithm{Auto, Ring, RecursiveDoubling} {
			t.Run(fmt.Sprintf("n=%d/%v", n, algo), func(t *testing.T) {
				t.Parallel()
				for _, length := range lengths(n) {
					for _, op := range []Op{Sum, Min, Max} {
						checkAllReduce[float64](t, n, length, op, Options{Algorithm: algo, ChunkBytes: 64}, false)
						checkAllReduce[float32](t, n, length, op, Options{Algorithm: algo, ChunkBytes: 64}, true)
					}
				}
			})
		}
	}
}

func checkAllReduce[T Float](t *testing.T, n, length int, op Op, opts Options, inPlace bool) {
	t.Helper()
	ctx := ctxT(t)
	in := inputs[T](n, length, 1)
	want := naive(op, in)
	out := make([][]T, n)
	errs := runRanks(n, opts, nil, func(c *Comm) error {
		src := append([]T(nil), in[c.Rank()]...)
		dst := src
		if !inPlace {
			dst = make([]T, length)
		}
		err := AllReduce(ctx, c, op, dst, src)
		out[c.Rank()] = dst
		if !inPlace && !equalBits(src, in[c.Rank()]) {
			return errors.New("out-of-place allreduce changed src")
		}
		return err
	})
	for r := 0; r < n; r++ {
		if errs[r] != nil {
			t.Fatalf("n=%d len=%d %v %T: rank %d: %v", n, length, op, want, r, errs[r])
		}
		if !equalBits(out[r], want) {
			t.Fatalf("n=%d len=%d %v %T: rank %d got %v, want %v", n, length, op, want, r, head(out[r]), head(want))
		}
	}
}

func equalBits[T Float](a, b []T) bool { return bytes.Equal(asBytes(a), asBytes(b)) }

func head[T Float](v []T) []T { return v[:min(len(v), 8)] }

// TestAllReduceSameBitsEverywhere uses arbitrary floats, whose sum depends on
// the order of additions: the result may differ from the naive sum in the last
// bits, but every rank must hold exactly the same bytes.
func TestAllReduceSameBitsEverywhere(t *testing.T) {
	t.Parallel()
	for n := 2; n <= 9; n++ {
		for _, algo := range []Algorithm{Ring, RecursiveDoubling} {
			ctx := ctxT(t)
			length := 1003
			rng := rand.New(rand.NewPCG(uint64(n), 7))
			in := make([][]float64, n)
			for r := range in {
				in[r] = make([]float64, length)
				for i := range in[r] {
					in[r][i] = rng.NormFloat64() * 1e3
				}
			}
			want := naive(Sum, in)
			errs := runRanks(n, Options{Algorithm: algo, ChunkBytes: 256}, nil, func(c *Comm) error {
				return AllReduce(ctx, c, Sum, in[c.Rank()], in[c.Rank()])
			})
			for r := range n {
				if errs[r] != nil {
					t.Fatal(errs[r])
				}
				if !equalBits(in[r], in[0]) {
					t.Fatalf("n=%d %v: rank %d holds other bytes than rank 0", n, algo, r)
				}
				for i := range want {
					if d := in[r][i] - want[i]; d > 1e-9*max(1, abs(want[i])) || -d > 1e-9*max(1, abs(want[i])) {
						t.Fatalf("n=%d %v: [%d] = %v, want %v", n, algo, i, in[r][i], want[i])
					}
				}
			}
		}
	}
}

func abs(x float64) float64 { return max(x, -x) }

func TestReduceScatterAllGatherBroadcast(t *testing.T) {
	t.Parallel()
	for n := 1; n <= 9; n++ {
		for _, length := range lengths(n) {
			ctx := ctxT(t)
			in := inputs[float32](n, length, 3)
			want := naive(Sum, in)

			// reduce-scatter: block r of the sum lands on rank r.
			errs := runRanks(n, smallPieces, nil, func(c *Comm) error {
				buf := append([]float32(nil), in[c.Rank()]...)
				lo, hi, err := ReduceScatter(ctx, c, Sum, buf)
				if err != nil {
					return err
				}
				if !equalBits(buf[lo:hi], want[lo:hi]) {
					return fmt.Errorf("block [%d,%d) = %v, want %v", lo, hi, buf[lo:hi], want[lo:hi])
				}
				return nil
			})
			mustAll(t, fmt.Sprintf("reduce-scatter n=%d len=%d", n, length), errs)

			// allgather: rank r fills block r; everyone ends with in[0].
			errs = runRanks(n, smallPieces, nil, func(c *Comm) error {
				buf := make([]float32, length)
				lo, hi := Segment(length, n, c.Rank())
				copy(buf[lo:hi], in[0][lo:hi])
				if err := AllGather(ctx, c, buf); err != nil {
					return err
				}
				if !equalBits(buf, in[0]) {
					return fmt.Errorf("allgather got %v, want %v", head(buf), head(in[0]))
				}
				return nil
			})
			mustAll(t, fmt.Sprintf("allgather n=%d len=%d", n, length), errs)

			// broadcast from every root.
			for root := 0; root < n; root++ {
				errs = runRanks(n, smallPieces, nil, func(c *Comm) error {
					buf := make([]float32, length)
					if c.Rank() == root {
						copy(buf, in[root])
					}
					if err := Broadcast(ctx, c, root, buf); err != nil {
						return err
					}
					if !equalBits(buf, in[root]) {
						return fmt.Errorf("broadcast from %d got %v", root, head(buf))
					}
					return nil
				})
				mustAll(t, fmt.Sprintf("broadcast n=%d len=%d root=%d", n, length, root), errs)
			}
		}
		// barrier, a few times in a row
		errs := runRanks(n, Options{}, nil, func(c *Comm) error {
			for range 3 {
				if err := c.Barrier(ctxT(t)); err != nil {
					return err
				}
			}
			return nil
		})
		mustAll(t, fmt.Sprintf("barrier n=%d", n), errs)
	}
}

func mustAll(t *testing.T, what string, errs []error) {
	t.Helper()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("%s: rank %d: %v", what, r, err)
		}
	}
}

// TestPeerClosesMidCollective: one rank fails part-way; every other rank fails
// at once (long before the deadline) with an error that names the collective
// and wraps the cause.
func TestPeerClosesMidCollective(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 3, 4, 7} {
		for _, algo := range []Algorithm{Ring, RecursiveDoubling} {
			victim := n - 1
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			start := time.Now()
			errs := runRanks(n, Options{Algorithm: algo, ChunkBytes: 64}, func(p *memPeer) {
				if p.rank == victim {
					p.failAfter = 3
				}
			}, func(c *Comm) error {
				buf := make([]float64, 500)
				return AllReduce(ctx, c, Sum, buf, buf)
			})
			cancel()
			if el := time.Since(start); el > 5*time.Second {
				t.Fatalf("n=%d %v: took %v: survivors waited for the deadline", n, algo, el)
			}
			for r, err := range errs {
				if err == nil {
					t.Fatalf("n=%d %v: rank %d succeeded although rank %d died", n, algo, r, victim)
				}
				if !errors.Is(err, errPeerClosed) {
					t.Fatalf("n=%d %v: rank %d: %v does not wrap the cause", n, algo, r, err)
				}
			}
		}
	}
}

// TestSilentPeer: one rank never answers; the others fail by their deadline
// with a wrapped context.DeadlineExceeded.
func TestSilentPeer(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 4} {
		deadline := 300 * time.Millisecond
		start := time.Now()
		errs := runRanks(n, Options{}, nil, func(c *Comm) error {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			if c.Rank() == 1 {
				<-ctx.Done() // silent: never calls the collective
				return nil
			}
			buf := make([]float32, 1<<16)
			return AllReduce(ctx, c, Max, buf, buf)
		})
		if el := time.Since(start); el > deadline+2*time.Second {
			t.Fatalf("n=%d: returned after %v, deadline %v", n, el, deadline)
		}
		// The silent rank's neighbours time out; a rank that fails drops its
		// links, so ranks further away may see that first.
		timedOut := 0
		for r, err := range errs {
			if r == 1 {
				continue
			}
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				timedOut++
			case errors.Is(err, errPeerClosed):
			default:
				t.Fatalf("n=%d rank %d: got %v, want a wrapped deadline error", n, r, err)
			}
		}
		if timedOut == 0 {
			t.Fatalf("n=%d: no rank reported the deadline: %v", n, errs)
		}
	}
}

func TestParse(t *testing.T) {
	for _, s := range []string{"sum", "min", "max"} {
		if o, err := ParseOp(s); err != nil || o.String() != s {
			t.Errorf("ParseOp(%q) = %v, %v", s, o, err)
		}
	}
	if _, err := ParseOp("avg"); err == nil {
		t.Error("ParseOp(avg) succeeded")
	}
	for _, s := range []string{"auto", "ring", "rd"} {
		if a, err := ParseAlgorithm(s); err != nil || a.String() != s {
			t.Errorf("ParseAlgorithm(%q) = %v, %v", s, a, err)
		}
	}
	if _, err := ParseAlgorithm("tree"); err == nil {
		t.Error("ParseAlgorithm(tree) succeeded")
	}
}

// TestLinksSymmetricAndSufficient: every link is known to both ends, and a
// memNet that only allows those links runs every collective.
func TestLinksSymmetric(t *testing.T) {
	for n := 1; n <= 17; n++ {
		for r := 0; r < n; r++ {
			for _, p := range Links(r, n) {
				if !slices.Contains(Links(p, n), r) {
					t.Fatalf("n=%d: %d links to %d but not back", n, r, p)
				}
			}
		}
	}
}
