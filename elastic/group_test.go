package elastic

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmlrun/dmlrun/ring"
)

// sum is the State of the package documentation's program.
type sum struct {
	step, rank, size int
	total            float64
}

func (s *sum) Step() int               { return s.step }
func (s *sum) Encode() ([]byte, error) { return json.Marshal([2]float64{float64(s.step), s.total}) }
func (s *sum) Decode(step int, b []byte) error {
	var v [2]float64
	err := json.Unmarshal(b, &v)
	s.step, s.total = step, v[1]
	return err
}
func (s *sum) Resize(_ context.Context, c *Comm) error {
	s.rank, s.size = c.Rank(), c.Size()
	return nil
}

// add is one step of the program: this rank's share of 1..n, allreduced,
// added to the total.
func (s *sum) add(ctx context.Context, c *Comm, n int) error {
	v := []float64{0}
	for j := s.rank; j < n; j += s.size {
		v[0] += float64(j + 1)
	}
	if err := c.AllReduce(ctx, ring.Sum, v); err != nil {
		return err
	}
	s.total += v[0]
	s.step++
	return nil
}

// TestGroupSurvivesAMemberLeaving runs the documentation's program in 4
// Groups of this process; one is closed mid-run (its connections drop as a
// killed process's would). The other three re-form the ring and finish all
// 100 steps with the total of an undisturbed run.
func TestGroupSurvivesAMemberLeaving(t *testing.T) {
	const steps, n = 100, 1000
	want := float64(steps) * n * (n + 1) / 2
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	groups := startGroups(t, ctx, 4)
	victim := 2
	stepped := make(chan struct{})
	var once sync.Once
	states := make([]*sum, len(groups))
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		s := &sum{}
		states[i] = s
		gctx, gcancel := context.WithCancel(ctx)
		wg.Go(func() {
			defer gcancel()
			errs[i] = g.Run(gctx, s, func(ctx context.Context, c *Comm) error {
				if s.step == steps {
					return ErrStop
				}
				if i == victim && s.step == 30 {
					once.Do(func() { close(stepped) })
					<-gctx.Done() // the test closes this member now
					return gctx.Err()
				}
				return s.add(ctx, c, n)
			})
		})
		if i == victim {
			go func() {
				<-stepped
				g.Close()
				gcancel()
			}()
		}
	}
	wg.Wait()
	for i, s := range states {
		if i == victim {
			if !errors.Is(errs[i], context.Canceled) {
				t.Errorf("the closed member: %v", errs[i])
			}
			continue
		}
		if errs[i] != nil || s.step != steps || s.total != want {
			t.Errorf("member %d: %v, step %d, total %v; want %d steps and %v", i, errs[i], s.step, s.total, steps, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultLANConfig()
	good.Nodes = 3
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Cluster = "" }, "Config.Cluster: empty"},
		{func(c *Config) { c.Nodes = 0 }, "Config.Nodes: 0"},
		{func(c *Config) { c.MinNodes = 4 }, "Config.MinNodes: 4: want 1 to Nodes (3)"},
		{func(c *Config) { c.Gossip = nil }, "Config.Gossip: nil"},
		{func(c *Config) { c.StepTimeout = 0 }, "Config.StepTimeout: 0s"},
		{func(c *Config) { c.RejoinTimeout = 10 * time.Millisecond }, "Config.RejoinTimeout: 10ms is shorter than two Ticks"},
		{func(c *Config) { c.Bind = "h:99999" }, "Config.Bind: bad port"},
	} {
		c := good
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestGroupAdmitsAJoiner: three Groups run the documentation's program; a
// fourth, with no state (step -1), starts mid-run. It is let in at a step
// boundary, receives the state, and all four finish with the total of an
// undisturbed run; the ring grew to 4.
func TestGroupAdmitsAJoiner(t *testing.T) {
	const steps, n = 400, 1000
	want := float64(steps) * n * (n + 1) / 2
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := func(i int, join string) *Group {
		cfg := DefaultLocalConfig()
		cfg.Cluster, cfg.Secret, cfg.Nodes, cfg.Slot, cfg.Logger = "sum", []byte("change me"), 3, i, testLogger(t)
		if join != "" {
			cfg.Join = []string{join}
		}
		g, err := Start(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		return g
	}
	var sizes [4]atomic.Int64
	mid := make(chan struct{})
	var once sync.Once
	run := func(i int, g *Group, s *sum) error {
		return g.Run(ctx, s, func(ctx context.Context, c *Comm) error {
			if s.step == steps {
				return ErrStop
			}
			if s.step == 40 {
				once.Do(func() { close(mid) })
			}
			if err := s.add(ctx, c, n); err != nil {
				return err
			}
			sizes[i].Store(int64(c.Size()))
			time.Sleep(time.Millisecond) // a step that lasts, so that the joiner arrives mid-run
			return nil
		})
	}
	g0 := start(0, "")
	groups := []*Group{g0, start(1, g0.Addr()), start(2, g0.Addr())}
	states := []*sum{{}, {}, {}, {step: -1}}
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() { errs[i] = run(i, g, states[i]) })
	}
	<-mid
	joiner := start(3, g0.Addr())
	wg.Go(func() { errs[3] = run(3, joiner, states[3]) })
	wg.Wait()
	for i, s := range states {
		if errs[i] != nil || s.step != steps || s.total != want {
			t.Errorf("member %d: %v, step %d, total %v; want %d steps and %v", i, errs[i], s.step, s.total, steps, want)
		}
		if got := sizes[i].Load(); got != 4 {
			t.Errorf("member %d ended in a ring of %d, want 4", i, got)
		}
	}
}

// testLogger logs to t with -v and ELASTIC_TEST_LOG set, else nowhere.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("ELASTIC_TEST_LOG") == "" {
		return quietLogger()
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestGroupStepLoopDoesNotAllocate: the Group's loop around a step (the
// step's context, the core's bookkeeping, the clock's ticks, the
// membership's generation) allocates nothing: two Groups step an
// allreduce of a buffer they reuse, and rank 0 counts the process's heap
// allocations over windows of steps.
func TestGroupStepLoopDoesNotAllocate(t *testing.T) {
	const warm, window, windows = 100, 200, 8
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	groups := startGroups(t, ctx, 2)
	var counts []uint64
	var before runtime.MemStats
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		s := &sum{}
		buf := make([]float64, 1000)
		wg.Go(func() {
			errs[i] = g.Run(ctx, s, func(ctx context.Context, c *Comm) error {
				if s.step == warm+window*windows {
					return ErrStop
				}
				if c.Rank() == 0 && s.step >= warm && (s.step-warm)%window == 0 {
					var now runtime.MemStats
					runtime.ReadMemStats(&now)
					if s.step > warm {
						counts = append(counts, now.Mallocs-before.Mallocs)
					}
					runtime.GC()
					runtime.ReadMemStats(&before)
				}
				if err := c.AllReduce(ctx, ring.Sum, buf); err != nil {
					return err
				}
				s.step++
				return nil
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// The runtime and gossip allocate now and then on their own; an
	// allocation per step shows in every window.
	if len(counts) == 0 || slices.Min(counts) > 10 {
		t.Errorf("allocations in windows of %d steps on 2 members: %v", window, counts)
	}
	t.Logf("allocations in windows of %d steps on 2 members: %v", window, counts)
}

// startGroups starts n Groups of one cluster in this process, closed when
// the test ends.
func startGroups(t *testing.T, ctx context.Context, n int) []*Group {
	t.Helper()
	groups := make([]*Group, n)
	for i := range groups {
		cfg := DefaultLocalConfig()
		cfg.Cluster, cfg.Secret, cfg.Nodes, cfg.Slot = "test", []byte("change me"), n, i
		cfg.Logger = quietLogger()
		if i > 0 {
			cfg.Join = []string{groups[0].Addr()}
		}
		g, err := Start(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		groups[i] = g
		t.Cleanup(func() { g.Close() })
	}
	return groups
}
