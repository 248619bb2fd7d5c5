package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/dmlrun/dmlrun/config"
	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/ring"
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
	// Chrome trace part (see TimelineOptions).
	Timeline TimelineOptions
	// OnStart, when set, is called once the step loop starts (a launcher
	// then knows that a node lost from here on is a failure to survive,
	// not a job that cannot start).
	OnStart func()
	// Progress, when set, is kept up to date with the run's phase, step and
	// loss, for a progress display.
	Progress *Progress
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
// of nodes, forms the ring, trains, and leaves.
func Run(ctx context.Context, o Options) (res *Result, err error) {
	cfg := o.Config
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	nodes := o.Nodes
	if nodes == 0 {
		nodes = cfg.Cluster.Nodes
	}
	cluster := o.Cluster
	if cluster == "" {
		cluster = "dmlrun"
	}
	digest := cfg.Digest()
	tcfg := transport.Config{Cluster: cluster, RunDigest: digest, Secret: o.Secret, Logger: log,
		Protection: protection(cfg.Cluster), StallWarn: cfg.Cluster.StallWarn.Duration}

	bindHost, _, err := elastic.SplitHostPort(o.Bind, 7946)
	if err != nil {
		return nil, err
	}
	prom, stopProm, err := startPrometheus(o.Metrics, log)
	if err != nil {
		return nil, err
	}
	defer stopProm()
	ln, err := transport.Listen(net.JoinHostPort(bindHost, "0"), tcfg)
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	_, dataPort, _ := net.SplitHostPort(ln.Addr().String())

	base := DefaultLANConfig()
	if o.Local {
		base = DefaultLocalConfig()
	}
	host := o.Host
	if host == "" { // by hand: name the host by its bind address, or its host name
		if ip := net.ParseIP(bindHost); ip != nil && !ip.IsUnspecified() {
			host = bindHost
		} else if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	tl, err := startTimeline(o.Timeline, host, o.Slot, log)
	if err != nil {
		return nil, err
	}
	defer func() { tl.close(err) }()
	mem, err := StartMembership(MemberConfig{Bind: o.Bind, Advertise: o.Advertise, Cluster: cluster, Secret: o.Secret, Base: base, Logger: log,
		Meta: Meta{Host: host, Slot: o.Slot, Digest: digest, Start: time.Now().UnixNano()}})
	if err != nil {
		return nil, err
	}
	w := &worker{cfg: cfg, baseLog: log, ln: ln, tcfg: tcfg, mem: mem, onStart: o.OnStart, progress: o.Progress, resume: o.Resume, dataBench: o.DataBench, prom: prom}
	if w.progress == nil {
		w.progress = new(Progress) // the stall inspector reads the step from it
	}
	w.tcfg.OnStall = w.stalled
	defer func() { // the current membership: Renew may have replaced the first
		// A node that fails tells the others at once; at the end of a run
		// every node is done, and there is nobody left to wait for.
		leave := time.Second
		if err == nil {
			leave = 50 * time.Millisecond
		}
		w.mem.Leave(leave)
	}()
	advHost := mem.AdvertisedHost()
	if err := mem.SetDataAddr(net.JoinHostPort(advHost, dataPort)); err != nil {
		return nil, err
	}
	log = log.With("node", mem.Name())
	log.Info("listening", "gossip", mem.Addr(), "data", net.JoinHostPort(advHost, dataPort))

	join := o.Join
	if o.Rendezvous != nil {
		if join, err = o.Rendezvous(mem.Addr()); err != nil {
			return nil, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.Cluster.Timeout.Duration)
	defer cancel()
	if err := mem.Join(wctx, join); err != nil {
		return nil, err
	}
	w.log, w.tl = log, tl
	defer func() {
		if w.comm != nil {
			w.comm.Close()
		}
	}()
	if running := w.runningRing(wctx); running {
		return w.join(ctx, wctx)
	}
	members, err := mem.WaitFor(wctx, nodes)
	if err != nil {
		return nil, err
	}
	if w.runningRing(wctx) { // the cluster started training meanwhile
		return w.join(ctx, wctx)
	}
	if err := w.formRing(wctx, members[:nodes], 0, 0); err != nil {
		return nil, err
	}
	w.log.Info("ring formed", "size", len(w.members), "ring", ringString(w.members), "frames", w.comm.Protection(), noticeIf(w.comm.Rank() == 0))

	t, err := newTrainer(ctx, w)
	if err != nil {
		return nil, err
	}
	if w.dataBench {
		return t.benchData(ctx)
	}
	return t.run(ctx)
}

// runningRing reports whether gossip shows members already training.
func (w *worker) runningRing(ctx context.Context) bool {
	for _, m := range w.mem.Members() {
		if m.State == "training" && m.Name != w.mem.Name() {
			return true
		}
	}
	return false
}

// join enters a ring that is already training: the members notice this node
// in gossip, finish their step and re-form the ring with it; this node keeps
// trying to form that ring until then, receives θ, the optimizer state and
// the step, and trains on.
func (w *worker) join(ctx, wctx context.Context) (*Result, error) {
	w.log.Info("the cluster is training: joining the running ring")
	t, err := newJoiner(ctx, w)
	if err != nil {
		return nil, err
	}
	var wait elastic.Backoff
	for {
		err := t.tryRing(wctx, w.liveView(wctx), wait.Next())
		if err == nil {
			w.log.Info("joined the ring", "size", len(w.members), "ring", ringString(w.members), "at step", t.done, Notice)
			return t.run(ctx)
		}
		if wctx.Err() != nil {
			return nil, fmt.Errorf("joining the running ring: %w (last attempt: %v)", wctx.Err(), err)
		}
		w.mem.WaitChange(wctx, 100*time.Millisecond)
	}
}

// worker is one node's place in the cluster: its gossip view, its data-plane
// listener, and the ring it is in now.
type worker struct {
	cfg       *config.Config
	log       *slog.Logger // with this node's name
	baseLog   *slog.Logger // without it (the name changes on renew)
	ln        *transport.Listener
	tcfg      transport.Config
	mem       *Membership
	onStart   func()
	progress  *Progress
	resume    bool
	dataBench bool
	prom      *promMetrics // nil without Options.Metrics

	epoch   uint32          // id of the current ring epoch
	members []Member        // the last ring that may have committed (see formRing), in rank order
	rings   map[uint32]bool // epochs of every ring this node was connected into
	term    uint32          // this node's term (Meta.Term) since its last ring
	comm    *Comm
	tl      *recorder // this node's timeline part, nil without
}

// formRing connects this node into a ring of members (in ring order) for
// epoch, and checks through the ring itself that every member formed it from
// the same view. Connecting and agreeing each have wait (0: the deadline of
// ctx alone). On success the ring is committed.
func (w *worker) formRing(ctx context.Context, members []Member, epoch uint32, wait time.Duration) error {
	rank := -1
	addrs := make([]string, len(members))
	for i, m := range members {
		addrs[i] = m.Data
		if m.Name == w.mem.Name() {
			rank = i
		}
	}
	if rank < 0 {
		return fmt.Errorf("this node is not among the first %d members of the ring (more nodes joined than cluster.nodes)", len(members))
	}
	if err := elastic.CheckReachable(members[rank], members); err != nil {
		return err
	}
	phase := func() (context.Context, context.CancelFunc) {
		if wait <= 0 {
			return ctx, func() {}
		}
		return context.WithTimeout(ctx, wait)
	}
	cctx, cancel := phase()
	comm, err := NewComm(cctx, w.ln, CommConfig{Transport: w.tcfg, Epoch: epoch, Timeout: w.cfg.Cluster.StepTimeout.Duration, Ring: ring.Options{Tracer: w.tl.tracer()}}, rank, addrs)
	cancel()
	if err != nil {
		return err
	}
	// From here the ring may commit: ranks finish the agreement at different
	// moments, so some members may complete it while this one fails. Quorum
	// is counted against this ring from now on, so that a member that
	// failed does not count by an older ring that the ones that completed
	// have left (two groups could then each see a majority).
	w.members = members
	if w.rings == nil {
		w.rings = map[uint32]bool{}
	}
	w.rings[epoch] = true
	// The term (a Lamport clock of rings, see elastic.Core): gossiped from
	// the commit point, so that a node left behind learns that the others
	// went on without it even if this ring never completes its agreement.
	for _, m := range members {
		w.term = max(w.term, m.Term)
	}
	w.term++
	if w.mem != nil {
		if err := w.mem.SetRingTerm(epoch, w.term); err != nil {
			comm.Close()
			return err
		}
	}
	actx, cancel := phase()
	defer cancel()
	if err := agreeOnView(actx, comm, members, w.tl); err != nil {
		comm.Close()
		return err
	}
	w.comm, w.epoch = comm, epoch
	w.progress.setRing(rank, len(members))
	w.prom.ring(comm, epoch)
	return nil
}

func ringString(ms []Member) string {
	s := ""
	for i, m := range ms {
		if i > 0 {
			s += " -> "
		}
		s += m.Host + "/" + strconv.Itoa(m.Slot)
	}
	return s
}

// agreeOnView checks through the ring itself that every member formed it
// from the same membership view: an allreduce of min and max of a digest of
// the member list. The same allreduce says whether any member records a
// timeline; then all of them align their clocks.
func agreeOnView(ctx context.Context, c *Comm, members []Member, tl *recorder) error {
	d := float64(elastic.ViewDigest(members))
	v := []float64{d, -d, tl.clockFlag()}
	if err := c.AllReduce(ctx, ring.Max, v); err != nil {
		return fmt.Errorf("agreeing on the ring: %w", err)
	}
	if v[0] != -v[1] {
		return errors.New("the nodes formed the ring from different membership views")
	}
	if v[2] > 0 {
		return alignClocks(ctx, c, tl)
	}
	return nil
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
func (w *worker) stalled(s transport.Stall) {
	who := fmt.Sprintf("rank %d", s.Peer)
	if s.Peer >= 0 && s.Peer < len(w.members) {
		m := w.members[s.Peer]
		who = fmt.Sprintf("rank %d (host %s, slot %d)", s.Peer, m.Host, m.Slot)
	}
	w.log.Warn(fmt.Sprintf("waiting on %s %s for %v: step %d, collective #%d chunk %d",
		s.Dir, who, s.Waited.Round(time.Second), w.progress.Snapshot().Step, s.Seq, s.Chunk),
		"peer", s.Peer, Notice)
}
