package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/dmlrun/dmlrun/config"
	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/jobmetrics"
	"github.com/dmlrun/dmlrun/jobprogress"
	"github.com/dmlrun/dmlrun/jobtrace"
	"github.com/dmlrun/dmlrun/transport"
)

// Options configure one worker.
type Options struct {
	Config *config.Config
	Secret []byte
	// Nodes is how many nodes to wait for; 0 means Config.Cluster.Nodes.
	Nodes int
	// Host names this node's host as the hosts file does, and Slot its
	// process slot there; the ring is sorted by (Host, Slot). Host defaults
	// to the advertised address.
	Host string
	Slot int
	// Bind is the gossip address (host:port, port 0 picks one); the data
	// plane listens on the same host with an OS-chosen port. Advertise is the
	// address peers should use, when it differs (NAT, 0.0.0.0 binds).
	Bind, Advertise string
	// Join lists gossip addresses of nodes to join.
	Join []string
	// Rendezvous, when set, is called with this node's gossip address once it
	// listens, and returns the addresses to join (a launcher's exchange).
	Rendezvous func(gossipAddr string) ([]string, error)
	// Local selects DefaultLocalConfig (every node on this host) over
	// DefaultLANConfig.
	Local bool
	// Cluster names the cluster (gossip label and handshake); "" = "dmlrun".
	Cluster string
	Logger  *slog.Logger
	// Resume continues from the newest checkpoint (see config.Checkpoint).
	Resume bool
	// DataBench loads the data and measures the data path (see DataBench)
	// instead of training.
	DataBench bool
	// Timeline, when its Part is set, streams this node's events to a
	// Chrome trace part (see jobtrace.Options).
	Timeline jobtrace.Options
	// OnStart, when set, is called once the step loop starts (a launcher
	// then knows that a node lost from here on is a failure to survive,
	// not a job that cannot start).
	OnStart func()
	// Progress, when set, is kept up to date with the run's phase, step and
	// loss, for a progress display.
	Progress *jobprogress.Progress
	// Metrics, when set, is the address (host:port) at which the node
	// serves Prometheus metrics, at /metrics, for as long as Run runs.
	Metrics string
}

// Result is what one node reports when training ends.
type Result struct {
	Rank, Size  int
	Steps       int
	ThetaSHA256 string
	Stats       *StepStats
	Data        *DataBench // with Options.DataBench: what loading cost
	Model       string     // the model.json this node wrote ("" on the others)
	Eval        Eval       // the last evaluation (after the last step)
	Recoveries  int        // rings this node re-formed after a failure or a join
	Stopped     string     // why the stopping rule ended the run early ("" if it did not)
	Best        string     // a search's kept candidate, by its settings ("" without a search)
}

// Eval is one evaluation's figures. Metric names the test metric: "r2" for
// regression, "accuracy" for classification.
type Eval struct {
	Step      int     `json:"step"`
	TrainLoss float64 `json:"train_loss"`
	TestLoss  float64 `json:"test_loss"`
	Metric    string  `json:"metric"`
	Value     float64 `json:"value"`
}

// Run runs one worker: it joins the cluster, waits for the configured number
// of nodes (or joins their running ring), trains on an elastic.Group, and
// leaves.
func Run(ctx context.Context, o Options) (res *Result, err error) {
	cfg := o.Config
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := checkOutputDir(cfg.Output.Dir); err != nil {
		return nil, err
	}
	bindHost, _, err := elastic.SplitHostPort(o.Bind, 7946)
	if err != nil {
		return nil, err
	}
	prom, stopProm, err := jobmetrics.Start(o.Metrics, log)
	if err != nil {
		return nil, err
	}
	defer stopProm()
	host := o.Host
	if host == "" { // by hand: name the host by its bind address, or its host name
		if ip := net.ParseIP(bindHost); ip != nil && !ip.IsUnspecified() {
			host = bindHost
		} else if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	tl, err := jobtrace.Start(o.Timeline, host, o.Slot, log)
	if err != nil {
		return nil, err
	}
	defer func() { tl.Close(err) }()
	t := &trainer{cfg: cfg, base: log, log: log, prom: prom, tl: tl, progress: o.Progress, onStart: o.OnStart, resume: o.Resume, bench: o.DataBench}
	if t.progress == nil {
		t.progress = new(jobprogress.Progress) // the stall inspector reads the step from it
	}
	if o.Resume {
		if err := t.loadCheckpoint(); err != nil {
			return nil, err
		}
	}
	g, err := elastic.Start(ctx, groupConfig(o, host, t))
	if err != nil {
		return nil, err
	}
	defer g.Close()
	t.name = g.Name
	t.log = log.With("node", g.Name())
	t.log.Info("listening", "gossip", g.Addr(), "data", g.DataAddr())
	join := o.Join
	if o.Rendezvous != nil {
		if join, err = o.Rendezvous(g.Addr()); err != nil {
			return nil, err
		}
	}
	if err := g.Join(ctx, join); err != nil {
		return nil, err
	}
	err = g.Run(ctx, t, t.stepOnce)
	if errors.Is(err, elastic.ErrNoState) && o.Resume {
		return nil, fmt.Errorf("-resume: no node has a checkpoint (looked for %s)", t.checkpointPath())
	}
	if err != nil {
		return nil, err
	}
	t.progress.SetPhase(jobprogress.PhaseDone)
	return t.result, nil
}

// groupConfig is the elastic.Group of a node of o on host, with t hearing
// of its rings.
func groupConfig(o Options, host string, t *trainer) elastic.Config {
	cfg := o.Config
	gc := elastic.DefaultLANConfig()
	if o.Local {
		gc = elastic.DefaultLocalConfig()
	}
	gc.Cluster, gc.Secret, gc.Job = o.Cluster, o.Secret, cfg.Digest()
	if gc.Cluster == "" {
		gc.Cluster = "dmlrun"
	}
	gc.Nodes = o.Nodes
	if gc.Nodes == 0 {
		gc.Nodes = cfg.Cluster.Nodes
	}
	gc.MinNodes = max(1, min(cfg.Cluster.MinNodes, gc.Nodes))
	gc.Bind, gc.Advertise, gc.Host, gc.Slot = o.Bind, o.Advertise, host, o.Slot
	gc.Protection = protection(cfg.Cluster)
	gc.StepTimeout, gc.JoinTimeout, gc.RejoinTimeout = cfg.Cluster.StepTimeout.Duration, cfg.Cluster.Timeout.Duration, cfg.Cluster.RejoinTimeout.Duration
	gc.StallWarn, gc.OnStall = cfg.Cluster.StallWarn.Duration, t.stalled
	gc.Tracer, gc.Events, gc.Logger = t.tl.Tracer(), t, o.Logger
	return gc
}

// protection maps cluster.frame_mac and cluster.encrypt to the data plane's
// frame protection.
func protection(c config.Cluster) transport.Protection {
	switch {
	case c.Encrypt:
		return transport.ProtectEncrypt
	case c.FrameMAC == "on":
		return transport.ProtectMAC
	case c.FrameMAC == "off":
		return transport.ProtectNone
	}
	return transport.ProtectAuto
}

// stalled is the stall inspector's warning: a collective of the current ring
// has waited cluster.stall_warn on one peer. It runs on the step loop's
// goroutine, once per stalled exchange.
func (t *trainer) stalled(s transport.Stall) {
	who := fmt.Sprintf("rank %d", s.Peer)
	if ms := t.comm().Members(); s.Peer >= 0 && s.Peer < len(ms) {
		m := ms[s.Peer]
		who = fmt.Sprintf("rank %d (host %s, slot %d)", s.Peer, m.Host, m.Slot)
	}
	t.log.Warn(fmt.Sprintf("waiting on %s %s for %v: step %d, collective #%d chunk %d",
		s.Dir, who, s.Waited.Round(time.Second), t.progress.Snapshot().Step, s.Seq, s.Chunk),
		"peer", s.Peer, Notice)
}
