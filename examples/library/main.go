// Command library is a distributed k-means (Lloyd's algorithm) built on
// dmlrun's elastic runtime alone: no trainer, no train.yaml. Every process
// holds a shard of the points, each step allreduces the per-cluster sums
// and counts, and every process moves the centroids the same way. Kill a
// process mid-run and the others re-form the ring, take over its points
// and go on from the same step.
//
//	go run ./examples/library -nodes 4 -bind 127.0.0.1:7000 &
//	for s in 1 2 3; do go run ./examples/library -nodes 4 -slot $s -bind 127.0.0.1:0 -join 127.0.0.1:7000 & done
//
// Each process prints the final centroids as one JSON line on stdout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/ring"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "library:", err)
		os.Exit(1)
	}
}

func run() error {
	nodes := flag.Int("nodes", 4, "processes of the first ring")
	slot := flag.Int("slot", 0, "this process's place in the ring")
	bind := flag.String("bind", "127.0.0.1:0", "gossip address host:port")
	join := flag.String("join", "", "gossip addresses of members to join, comma-separated")
	km := &kmeans{}
	flag.IntVar(&km.k, "k", 4, "clusters")
	flag.IntVar(&km.n, "points", 1_000_000, "points, in k blobs")
	flag.IntVar(&km.steps, "steps", 300, "Lloyd iterations")
	flag.Uint64Var(&km.seed, "seed", 1, "seeds the points")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := elastic.DefaultLocalConfig()
	cfg.Cluster, cfg.Job, cfg.Nodes, cfg.Slot, cfg.Bind = "kmeans", fmt.Sprint(km.k, km.n, km.steps, km.seed), *nodes, *slot, *bind
	cfg.Secret = []byte(os.Getenv("KMEANS_SECRET") + "kmeans example")
	if *join != "" {
		cfg.Join = strings.Split(*join, ",")
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()}))
	g, err := elastic.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer g.Close()
	cfg.Logger.Info("listening", "gossip", g.Addr())
	km.log = cfg.Logger
	km.init()
	if err := g.Run(ctx, km, km.step); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"step": km.done, "centroids": km.c})
}

// kmeans is the application's state: the centroids and the step count;
// and this process's shard of the points.
type kmeans struct {
	k, n, steps int
	seed        uint64
	done        int          // Lloyd iterations applied
	c           [][2]float64 // centroids
	mine        [][2]float64 // this process's points
	sums        []float64    // per cluster: Σx, Σy, count
	log         *slog.Logger
}

func (m *kmeans) init() {
	m.c = make([][2]float64, m.k)
	for j := range m.c { // the first point of each blob
		m.c[j] = point(m.seed, j, m.k)
	}
	m.sums = make([]float64, 3*m.k)
}

// Step, Encode, Decode and Resize make kmeans an elastic.State.
func (m *kmeans) Step() int { return m.done }

func (m *kmeans) Encode() ([]byte, error) { return json.Marshal(m.c) }

func (m *kmeans) Decode(step int, b []byte) error {
	var c [][2]float64
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	if len(c) != m.k {
		return fmt.Errorf("%d centroids, want %d", len(c), m.k)
	}
	m.c, m.done = c, step
	return nil
}

// Resize takes the points i with i mod size = rank.
func (m *kmeans) Resize(_ context.Context, c *elastic.Comm) error {
	m.mine = m.mine[:0]
	for i := c.Rank(); i < m.n; i += c.Size() {
		m.mine = append(m.mine, point(m.seed, i, m.k))
	}
	return nil
}

// step is one Lloyd iteration: assign this shard's points to their nearest
// centroid, allreduce the sums, move the centroids.
func (m *kmeans) step(ctx context.Context, c *elastic.Comm) error {
	if m.done == m.steps {
		return elastic.ErrStop
	}
	clear(m.sums)
	for _, p := range m.mine {
		best, bd := 0, math.Inf(1)
		for j, q := range m.c {
			if d := (p[0]-q[0])*(p[0]-q[0]) + (p[1]-q[1])*(p[1]-q[1]); d < bd {
				best, bd = j, d
			}
		}
		m.sums[3*best] += p[0]
		m.sums[3*best+1] += p[1]
		m.sums[3*best+2]++
	}
	if err := c.AllReduce(ctx, ring.Sum, m.sums); err != nil {
		return err // a RingError: Run re-forms the ring and redoes this step
	}
	for j := range m.c {
		if n := m.sums[3*j+2]; n > 0 {
			m.c[j] = [2]float64{m.sums[3*j] / n, m.sums[3*j+1] / n}
		}
	}
	m.done++
	if m.done%10 == 0 && c.Rank() == 0 {
		m.log.Info("step", "step", m.done, "size", c.Size())
	}
	return nil
}

// Centers are the blobs' true centers.
var Centers = [][2]float64{{3, 3}, {-3, 3}, {-3, -3}, {3, -3}, {0, 6}, {6, 0}, {0, -6}, {-6, 0}}

// point i lies in blob i mod k, with Gaussian noise of σ 0.7 drawn from
// (seed, i) alone: any process can make any point.
func point(seed uint64, i, k int) [2]float64 {
	u := func(j uint64) float64 {
		z := seed*0x9e3779b97f4a7c15 + uint64(i)*0xbf58476d1ce4e5b9 + j*0x94d049bb133111eb
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		return (float64(z>>11) + 0.5) / (1 << 53)
	}
	r, t := math.Sqrt(-2*math.Log(u(1))), 2*math.Pi*u(2) // Box-Muller
	c := Centers[i%k%len(Centers)]
	return [2]float64{c[0] + 0.7*r*math.Cos(t), c[1] + 0.7*r*math.Sin(t)}
}

var _ elastic.State = (*kmeans)(nil)

// logLevel is debug with KMEANS_DEBUG set, else info.
func logLevel() slog.Level {
	if os.Getenv("KMEANS_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
