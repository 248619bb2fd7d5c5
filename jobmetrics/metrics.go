package jobmetrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/train"
	"github.com/dmlrun/dmlrun/transport"
)

// Metrics are one node's Prometheus metrics, in a registry of their own. A
// nil *Metrics records nothing, so each hook in a trainer is one line that
// costs a nil check without metrics.
// The hooks called by the step loop (step) only update metrics resolved up
// front, and allocate nothing; the bytes per peer are read from the
// transport's counters at scrape time, by a collector.
type Metrics struct {
	reg *prometheus.Registry

	worldSize, rank, epoch prometheus.Gauge
	stepNow, trainLoss     prometheus.Gauge
	lastStep               prometheus.Gauge
	steps, samples         prometheus.Counter
	stepTime, allreduce    prometheus.Histogram
	pause                  prometheus.Histogram
	recoveries             [len(recoveryReasons)]prometheus.Counter

	testMetric *prometheus.GaugeVec
	// The children of testMetric, resolved at the first evaluation (which
	// names there are depends on the task). Only the trainer's goroutine
	// touches them.
	testLoss, testAccuracy, testMSE, testR2 prometheus.Gauge

	traffic *trafficCollector
}

// recoveryReasons are the values of dmlrun_recoveries_total's reason label,
// in the order recoveryReason returns them.
var recoveryReasons = [...]string{"peer_lost", "timeout", "frame_auth", "protocol", "member_joined"}

// recoveryReason classifies what made the ring re-form, as an index into
// recoveryReasons: a node joined, a collective passed its deadline (a
// stopped or cut-off peer), a frame failed authentication or did not belong
// to the collective, or else a peer was lost (a connection broke).
func recoveryReason(cause error) int {
	switch {
	case errors.Is(cause, elastic.ErrMemberJoined):
		return 4
	case errors.Is(cause, context.DeadlineExceeded):
		return 1
	case errors.Is(cause, transport.ErrFrameAuth):
		return 2
	case errors.Is(cause, transport.ErrProtocol):
		return 3
	}
	return 0
}

// New registers every metric of a node, the Go runtime's and the
// process's, in a new registry.
func New() *Metrics {
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	}
	fast := prometheus.ExponentialBuckets(1e-5, 2, 20) // 10 µs to 5.2 s
	slow := prometheus.ExponentialBuckets(1e-3, 2, 17) // 1 ms to 65 s
	p := &Metrics{
		reg:       prometheus.NewRegistry(),
		worldSize: gauge("dmlrun_world_size", "Number of nodes in this node's current ring."),
		rank:      gauge("dmlrun_rank", "This node's rank in its current ring."),
		epoch:     gauge("dmlrun_ring_epoch", "Id of the current ring epoch (derived from the member list; changes when the ring re-forms)."),
		stepNow:   gauge("dmlrun_step", "Steps applied to θ so far, counting those received from the ring (a joiner, a resumed run)."),
		trainLoss: gauge("dmlrun_train_loss", "Loss of the last step's global batch (with the L2 term)."),
		lastStep:  gauge("dmlrun_last_step_timestamp_seconds", "Unix time at which this node last completed a step."),
		steps:     counter("dmlrun_steps_total", "Training steps this node completed."),
		samples:   counter("dmlrun_samples_total", "Rows of the global batches that this node computed gradients for (sum over nodes: the cluster's rows)."),
		stepTime:  histogram("dmlrun_step_duration_seconds", "Time of a training step: batch, local gradients, allreduce and update.", fast),
		allreduce: histogram("dmlrun_allreduce_duration_seconds", "Time of a step's allreduce of the gradient vector.", fast),
		pause:     histogram("dmlrun_recovery_pause_seconds", "Time from a ring failure to the first step the new ring completed.", slow),
		testMetric: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dmlrun_test_metric",
			Help: "Last evaluation on the test set (the training set without one), over all nodes: loss, and accuracy or mse and r2."}, []string{"name"}),
		traffic: newTrafficCollector(),
	}
	recoveries := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dmlrun_recoveries_total",
		Help: "Times the ring re-formed with this node, by what caused it."}, []string{"reason"})
	for i, r := range recoveryReasons {
		p.recoveries[i] = recoveries.WithLabelValues(r)
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "dmlrun_build_info", Help: "Always 1; the labels name the dmlrun build.",
		ConstLabels: prometheus.Labels{"version": buildVersion(), "goversion": runtime.Version()}})
	build.Set(1)
	p.reg.MustRegister(build, p.worldSize, p.rank, p.epoch, p.stepNow, p.trainLoss, p.lastStep, p.steps, p.samples,
		p.stepTime, p.allreduce, p.pause, p.testMetric, recoveries, p.traffic,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return p
}

// buildVersion is the module version of this binary, or its VCS revision,
// or "devel".
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			return s.Value[:min(12, len(s.Value))]
		}
	}
	return "devel"
}

// Handler serves the metrics in the exposition formats Prometheus asks for.
func (p *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{Registry: p.reg, Timeout: 10 * time.Second})
}

// Ring records the ring this node has just committed to: its size, this
// node's rank, the epoch, and the mesh whose bytes dmlrun_sent_bytes_total
// and dmlrun_received_bytes_total count from now on.
func (p *Metrics) Ring(c *elastic.Comm, epoch uint32) {
	if p == nil {
		return
	}
	p.worldSize.Set(float64(c.Size()))
	p.rank.Set(float64(c.Rank()))
	p.epoch.Set(float64(epoch))
	p.traffic.setMesh(c.Mesh())
}

// Step records a completed training step: done steps applied so far,
// started at start, allreduce the time of its allreduce, rows the batch rows
// this node owned, loss the batch loss. It allocates nothing.
func (p *Metrics) Step(done int, start time.Time, allreduce time.Duration, rows int, loss float64) {
	if p == nil {
		return
	}
	now := time.Now()
	p.stepTime.Observe(now.Sub(start).Seconds())
	p.allreduce.Observe(allreduce.Seconds())
	p.steps.Inc()
	p.samples.Add(float64(rows))
	p.stepNow.Set(float64(done))
	p.trainLoss.Set(loss)
	p.lastStep.Set(float64(now.UnixNano()) / 1e9)
}

// Eval records an evaluation's metrics (MSE and R² for regression, accuracy
// otherwise).
func (p *Metrics) Eval(m train.Metrics, regression bool) {
	if p == nil {
		return
	}
	if p.testLoss == nil {
		p.testLoss = p.testMetric.WithLabelValues("loss")
		if regression {
			p.testMSE, p.testR2 = p.testMetric.WithLabelValues("mse"), p.testMetric.WithLabelValues("r2")
		} else {
			p.testAccuracy = p.testMetric.WithLabelValues("accuracy")
		}
	}
	p.testLoss.Set(m.Loss)
	if regression {
		p.testMSE.Set(m.MSE)
		p.testR2.Set(m.R2)
	} else {
		p.testAccuracy.Set(m.Accuracy)
	}
}

// Recovered counts a recovery (the ring re-formed) by its cause.
func (p *Metrics) Recovered(cause error) {
	if p == nil {
		return
	}
	p.recoveries[recoveryReason(cause)].Inc()
}

// Paused records how long training stood still in a recovery.
func (p *Metrics) Paused(d time.Duration) {
	if p == nil {
		return
	}
	p.pause.Observe(d.Seconds())
}

// trafficCollector reports the data-plane bytes sent to and received from
// each peer rank, read from the transport's counters at scrape time: those
// of the current ring's mesh, plus those of the meshes of earlier rings
// (added up by rank when the ring changes), so that the counters never go
// down.
type trafficCollector struct {
	sent, received *prometheus.Desc

	mu   sync.Mutex
	mesh *transport.Mesh   // the current ring's
	past map[int][2]uint64 // by peer rank: bytes sent and received over earlier meshes
}

func newTrafficCollector() *trafficCollector {
	return &trafficCollector{
		sent: prometheus.NewDesc("dmlrun_sent_bytes_total",
			"Data-plane bytes (frame headers, payloads, tags) this node sent to the peer of that rank.", []string{"peer"}, nil),
		received: prometheus.NewDesc("dmlrun_received_bytes_total",
			"Data-plane bytes (frame headers, payloads, tags) this node received from the peer of that rank.", []string{"peer"}, nil),
		past: map[int][2]uint64{},
	}
}

// setMesh makes m the mesh whose bytes count from now on; what the previous
// one carried (it is closed by then) is kept in past.
func (c *trafficCollector) setMesh(m *transport.Mesh) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mesh == m {
		return
	}
	c.past = c.totals()
	c.mesh = m
}

// totals adds the current mesh's bytes to past's; c.mu is held.
func (c *trafficCollector) totals() map[int][2]uint64 {
	out := maps.Clone(c.past)
	if c.mesh == nil {
		return out
	}
	for peer := range c.mesh.Size() {
		if s, r, ok := c.mesh.Traffic(peer); ok {
			t := out[peer]
			out[peer] = [2]uint64{t[0] + s, t[1] + r}
		}
	}
	return out
}

// Describe implements prometheus.Collector.
func (c *trafficCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.sent
	ch <- c.received
}

// Collect implements prometheus.Collector.
func (c *trafficCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	t := c.totals()
	c.mu.Unlock()
	for _, peer := range slices.Sorted(maps.Keys(t)) {
		label := strconv.Itoa(peer)
		ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(t[peer][0]), label)
		ch <- prometheus.MustNewConstMetric(c.received, prometheus.CounterValue, float64(t[peer][1]), label)
	}
}

// Start serves p's metrics at http://addr/metrics until stop is
// called. addr "" serves nothing (p nil, stop a no-op). A port in use, or
// an address this host does not have, is an error that names it.
func Start(addr string, log *slog.Logger) (p *Metrics, stop func(), err error) {
	if addr == "" {
		return nil, func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("-metrics %s: the port is already in use (another node or program listens there): choose another -metrics address or -metrics-port", addr)
		}
		return nil, nil, fmt.Errorf("-metrics %s: %w", addr, err)
	}
	p = New()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", p.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server stopped", "addr", ln.Addr(), "err", err)
		}
	}()
	log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return p, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil { // a scrape still running after 2 s
			srv.Close()
		}
		<-done
	}, nil
}

// Steps is how many steps dmlrun_steps_total counts (0 on a nil Metrics).
func (p *Metrics) Steps() float64 {
	if p == nil {
		return 0
	}
	var m dto.Metric
	if err := p.steps.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
