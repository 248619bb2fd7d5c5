package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dmlrun/dmlrun/config"
	"github.com/dmlrun/dmlrun/data"
	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/jobprogress"
	"github.com/dmlrun/dmlrun/jobtrace"
	"github.com/dmlrun/dmlrun/launch"
	"github.com/dmlrun/dmlrun/node"
	"github.com/dmlrun/dmlrun/transport"
)

// loadConfig reads train.yaml, or the built-in default job when path is "".
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Parse([]byte(config.Default))
	}
	return config.Load(path)
}

// launchFlags are the flags of `dmlrun -np N | -hosts FILE | -H LIST [train.yaml]`.
type launchFlags struct {
	np                  int
	hostsFile, hostList string
	ssh, remoteBin      string
	port                int
	iface               string
	verbose, debug      bool
	resume              bool
	maxRestarts         int
	progress            launch.ProgressMode
	logDir              string
	metricsPort         int
	timeline            string // -timeline FILE: a Chrome trace of the job
	timelineSteps       int
	config              string
}

func parseLaunch(args []string, stderr io.Writer) (launchFlags, error) {
	var f launchFlags
	fs := flag.NewFlagSet("dmlrun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&f.np, "np", 0, "number of local processes to start")
	fs.StringVar(&f.hostsFile, "hosts", "", "hosts file: start the nodes on every listed host (see hosts.example)")
	fs.StringVar(&f.hostList, "H", "", "hosts inline: h1:2,h2:2")
	fs.StringVar(&f.ssh, "ssh", "ssh", "ssh client command for remote hosts, e.g. \"ssh -p 2222 -i key\"")
	fs.StringVar(&f.remoteBin, "remote-bin", "", "dmlrun binary on the remote hosts (default: this binary's path)")
	fs.IntVar(&f.port, "port", 7946, "gossip port of slot 0 on each host (slot i uses port+i; 0 = OS-chosen)")
	fs.StringVar(&f.iface, "iface", "", "network interface the nodes bind to (default: the address in the hosts file, or all)")
	fs.BoolVar(&f.verbose, "v", false, "show every node's full log on the terminal, each line prefixed with its node")
	fs.BoolVar(&f.debug, "debug", false, "debug logging on every node")
	fs.BoolVar(&f.resume, "resume", false, "continue from the newest checkpoint (checkpoint.dir)")
	fs.IntVar(&f.maxRestarts, "max-restarts", 0, "restart a node lost during training up to this many times (it rejoins the ring)")
	progress := fs.String("progress", "auto", "progress display: auto (a bar on a terminal, plain lines otherwise), bar, plain or none")
	fs.StringVar(&f.logDir, "log-dir", "", "where each node's full log goes, as rank-N.log (default <output.dir>/logs)")
	fs.IntVar(&f.metricsPort, "metrics-port", 0, "every node serves Prometheus metrics at /metrics, slot i of each host on this port + i (0: none)")
	fs.StringVar(&f.timeline, "timeline", "", "write a Chrome trace of the job (every rank's steps, allreduces, data loading, recoveries) to `FILE`")
	fs.IntVar(&f.timelineSteps, "timeline-steps", jobtrace.DefaultSteps, "record the first N steps of each node in the -timeline trace")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if f.timelineSteps < 1 {
		return f, fmt.Errorf("-timeline-steps %d: want at least 1", f.timelineSteps)
	}
	var err error
	if f.progress, err = launch.ParseProgressMode(*progress); err != nil {
		return f, err
	}
	if f.maxRestarts < 0 {
		return f, fmt.Errorf("-max-restarts %d is negative", f.maxRestarts)
	}
	if f.config, err = configArg(fs); err != nil {
		return f, err
	}
	given := 0
	for _, set := range []bool{f.np != 0, f.hostsFile != "", f.hostList != ""} {
		if set {
			given++
		}
	}
	if given != 1 {
		return f, errors.New("give exactly one of -np N, -hosts FILE or -H LIST")
	}
	if f.np < 0 || f.np > 256 {
		return f, fmt.Errorf("-np %d: want 1 to 256 local processes", f.np)
	}
	if f.port < 0 || f.port > 65535 {
		return f, fmt.Errorf("-port %d: want 0 to 65535", f.port)
	}
	if f.metricsPort < 0 || f.metricsPort > 65535 {
		return f, fmt.Errorf("-metrics-port %d: want 1 to 65535 (0: no metrics)", f.metricsPort)
	}
	if len(strings.Fields(f.ssh)) == 0 {
		return f, errors.New("-ssh is empty")
	}
	return f, nil
}

// configArg returns the optional train.yaml argument ("" for the built-in
// default job).
func configArg(fs *flag.FlagSet) (string, error) {
	if fs.NArg() > 1 {
		return "", fmt.Errorf("one train.yaml expected, got %q", fs.Args())
	}
	return fs.Arg(0), nil
}

// parseHosts reads the hosts of -hosts FILE or -H LIST (nil when neither).
func parseHosts(file, list string) ([]launch.Host, error) {
	switch {
	case file != "" && list != "":
		return nil, errors.New("give -hosts or -H, not both")
	case file != "":
		return launch.ParseHostfile(file)
	case list != "":
		return launch.ParseHostList(list)
	}
	return nil, nil
}

// checkMetricsPorts checks that the ports -metrics-port gives every slot
// of every host (base+slot) exist, and that they do not overlap the gossip
// ports of -port (gossip+slot, when gossip is not 0).
func checkMetricsPorts(base, gossip int, hosts []launch.Host) error {
	if base == 0 {
		return nil
	}
	slots := 0
	for _, h := range hosts {
		slots = max(slots, h.Slots)
	}
	if last := base + slots - 1; last > 65535 {
		return fmt.Errorf("-metrics-port %d: a host with %d slots needs ports %d to %d, beyond 65535: choose a port of at most %d", base, slots, base, last, 65536-slots)
	}
	if gossip > 0 && base < gossip+slots && gossip < base+slots {
		return fmt.Errorf("-metrics-port %d: ports %d to %d overlap the gossip ports of -port %d (%d to %d)", base, base, base+slots-1, gossip, gossip, gossip+slots-1)
	}
	return nil
}

// hosts returns where the nodes run.
func (f launchFlags) hosts() ([]launch.Host, error) {
	if f.np > 0 {
		return []launch.Host{{Name: "127.0.0.1", Slots: f.np}}, nil
	}
	return parseHosts(f.hostsFile, f.hostList)
}

// launchCmd runs `dmlrun -np N | -hosts FILE | -H LIST [train.yaml]`.
func launchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseLaunch(args, stderr)
	if err != nil {
		return usageErr(err)
	}
	_, _, err = runJob(ctx, f, nil, stdout, stderr)
	return err
}

// runJob starts one node per slot (locally, or over ssh), with extra flags
// for each, and waits for them.
func runJob(ctx context.Context, f launchFlags, extra []string, stdout, stderr io.Writer) (*launch.JobResult, *config.Config, error) {
	cfg, err := loadConfig(f.config) // fail here, once, rather than in every node
	if err != nil {
		return nil, nil, err
	}
	hosts, err := f.hosts()
	if err != nil {
		return nil, nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	var cfgArg []string
	if f.config != "" {
		abs, err := filepath.Abs(f.config) // the same path must be readable on every host
		if err != nil {
			return nil, nil, err
		}
		cfgArg = []string{abs}
	} else {
		fmt.Fprintf(stderr, "dmlrun: no train.yaml given: running the built-in default job %q\n", cfg.Name)
	}
	port, allLocal := f.port, true
	for _, h := range hosts {
		allLocal = allLocal && h.IsLocal()
	}
	if f.np > 0 {
		port = 0 // -np: OS-chosen ports, so that several jobs can share a host
	}
	if err := checkMetricsPorts(f.metricsPort, port, hosts); err != nil {
		return nil, nil, err
	}
	if allLocal { // the nodes read these very paths: a missing one fails here, once
		for _, ps := range []config.Paths{cfg.Data.Train, cfg.Data.Test} {
			if len(ps) > 0 {
				if _, err := data.ExpandPaths(ps); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	remote := launch.Remote{SSH: strings.Fields(f.ssh), Bin: f.remoteBin, Self: self}
	secret := string(transport.GenerateSecret())
	slots := launch.Slots(hosts)
	tl, err := newJobTimeline(f.timeline, f.timelineSteps, slots, remote)
	if err != nil {
		return nil, nil, err
	}
	specs := make([]launch.Spec, len(slots))
	hellos := make([]launch.NodeHello, len(slots))
	for i, s := range slots {
		bind := s.BindAddr(port)
		args := []string{"node", "-launched", "-bind", bind, "-host", s.Host.Name, "-slot", fmt.Sprint(s.Slot)}
		if f.metricsPort > 0 { // on the node's bind host: 127.0.0.1 with -np
			host, _, _ := net.SplitHostPort(bind)
			args = append(args, "-metrics", net.JoinHostPort(host, strconv.Itoa(f.metricsPort+s.Slot)))
		}
		if allLocal {
			args = append(args, "-local")
		}
		if f.iface != "" {
			args = append(args, "-iface", f.iface)
		}
		if f.debug {
			args = append(args, "-v")
		}
		if f.resume {
			args = append(args, "-resume")
		}
		args = append(args, tl.nodeArgs(i)...)
		args = append(append(args, extra...), cfgArg...)
		label := s.Label()
		if f.np > 0 {
			label = fmt.Sprint(s.Rank)
		}
		specs[i] = launch.Spec{Label: label, Argv: remote.Command(s.Host, args)}
		hellos[i] = launch.NodeHello{Secret: secret, Host: s.Host.Name, Slot: s.Slot, Nodes: len(slots)}
	}
	logs, closeLogs, err := openLogs(cmp.Or(f.logDir, filepath.Join(cfg.Output.Dir, "logs")), len(specs))
	if err != nil {
		return nil, nil, err
	}
	defer closeLogs()
	for i := range specs {
		specs[i].Log = logs[i]
	}
	d := launch.NewDisplay(stderr, f.progress)
	defer d.Close()
	res, err := launch.RunJob(ctx, launch.Job{Specs: specs, Hellos: hellos, MaxRestarts: f.maxRestarts,
		Out: stdout, Display: d, Verbose: f.verbose})
	return res, cfg, errors.Join(err, tl.finish(ctx, d))
}

// openLogs creates dir/rank-0.log ... rank-(n-1).log, one per node in launch
// order, and returns them with a function that closes them all.
func openLogs(dir string, n int) ([]*os.File, func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("log directory: %w", err)
	}
	files := make([]*os.File, 0, n)
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	for i := range n {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("rank-%d.log", i)))
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("log file: %w", err)
		}
		files = append(files, f)
	}
	return files, closeAll, nil
}

// nodeFlags are the flags of `dmlrun node`.
type nodeFlags struct {
	join                  []string
	bind, advertise, host string
	iface                 string
	slot, nodes           int
	secretFile            string
	launched, local       bool
	verbose, stats        bool
	dataBench             bool
	resume                bool
	metrics               string
	timeline              jobtrace.Options
	config                string
}

func parseNode(args []string, stderr io.Writer) (nodeFlags, error) {
	var f nodeFlags
	fs := flag.NewFlagSet("dmlrun node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	join := fs.String("join", "", "gossip addresses of running nodes, comma-separated (host:port)")
	fs.StringVar(&f.bind, "bind", "0.0.0.0:7946", "gossip bind address; the data plane uses the same interface")
	fs.StringVar(&f.advertise, "advertise", "", "address other nodes reach this one at (default: the bind address, or a private IP for 0.0.0.0)")
	fs.StringVar(&f.host, "host", "", "host name in ring order (default: the advertised address)")
	fs.IntVar(&f.slot, "slot", 0, "process slot on this host")
	fs.IntVar(&f.nodes, "nodes", 0, "number of nodes to wait for (default: cluster.nodes)")
	fs.StringVar(&f.secretFile, "secret-file", "", "file holding the cluster secret (default: $"+transport.SecretEnv+")")
	fs.BoolVar(&f.local, "local", false, "tune gossip for nodes on one host")
	fs.StringVar(&f.iface, "iface", "", "bind to this network interface's address (keeps -bind's port)")
	fs.BoolVar(&f.launched, "launched", false, "internal: started by a dmlrun launcher, which talks on stdin/stdout")
	fs.BoolVar(&f.verbose, "v", false, "debug logging")
	fs.BoolVar(&f.stats, "stats", false, "internal: report step-time statistics to the launcher")
	fs.BoolVar(&f.dataBench, "data-bench", false, "internal: load the data, report what it cost to the launcher, and stop (dmlrun bench data)")
	fs.BoolVar(&f.resume, "resume", false, "continue from the newest checkpoint (checkpoint.dir)")
	fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics (host:port; with -iface, a missing or 0.0.0.0 host is that interface's address)")
	fs.StringVar(&f.timeline.Part, "timeline-part", "", "stream this node's timeline events (a Chrome trace) to `FILE`; dmlrun -timeline merges the parts")
	fs.IntVar(&f.timeline.PID, "timeline-pid", -1, "process id of this node in the merged timeline (default: its first rank)")
	fs.IntVar(&f.timeline.Steps, "timeline-steps", jobtrace.DefaultSteps, "record the first N steps in the timeline part")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if f.metrics != "" {
		if err := checkListenAddr(f.metrics); err != nil {
			return f, fmt.Errorf("-metrics %q: %w", f.metrics, err)
		}
	}
	if *join != "" {
		f.join = strings.Split(*join, ",")
	}
	var err error
	if f.config, err = configArg(fs); err != nil {
		return f, err
	}
	if f.nodes < 0 || f.slot < 0 {
		return f, errors.New("-nodes and -slot must not be negative")
	}
	return f, nil
}

// checkListenAddr checks that addr is host:port (host may be empty) with a
// port of 0 to 65535.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port, e.g. 127.0.0.1:9100 or :9100: %w", err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("port %q: want 0 to 65535", port)
	}
	return nil
}

// nodeCmd runs `dmlrun node`: one worker.
func nodeCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	f, err := parseNode(args, stderr)
	if err != nil {
		return usageErr(err)
	}
	level := slog.LevelInfo
	if f.verbose {
		level = slog.LevelDebug
	}
	var handler slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	var child *launch.Child
	if f.launched { // notices and errors go to the launcher's terminal too
		child = launch.NewChild(stdin, stdout)
		handler = launch.NewNoticeHandler(handler, node.NoticeKey, func(l launch.LogLine) {
			_ = child.Send(launch.NodeReport{Log: &l})
		})
	}
	log := slog.New(handler)
	cfg, err := loadConfig(f.config)
	if err != nil {
		return err
	}
	if f.iface != "" {
		if f.bind, err = elastic.InterfaceAddr(f.iface, f.bind); err != nil {
			return err
		}
		if h, _, _ := net.SplitHostPort(f.metrics); f.metrics != "" && (h == "" || net.ParseIP(h).IsUnspecified()) {
			if f.metrics, err = elastic.InterfaceAddr(f.iface, f.metrics); err != nil {
				return err
			}
		}
	}
	o := node.Options{Config: cfg, Resume: f.resume, Nodes: f.nodes, Host: f.host, Slot: f.slot, Bind: f.bind,
		Advertise: f.advertise, Join: f.join, Local: f.local, Logger: log, DataBench: f.dataBench, Metrics: f.metrics}
	o.Timeline = f.timeline
	if !f.launched {
		if o.Secret, err = transport.LoadSecret(f.secretFile); err != nil {
			return err
		}
		_, err := node.Run(ctx, o)
		return err
	}

	// Started by a launcher: identity and secret arrive on stdin, the gossip
	// address goes back, the join list arrives; stdin closing means stop.
	var hello launch.NodeHello
	if err := child.Recv(&hello); err != nil {
		return fmt.Errorf("reading the launcher's hello: %w", err)
	}
	o.Secret, o.Host, o.Slot, o.Nodes = []byte(hello.Secret), hello.Host, hello.Slot, hello.Nodes
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	o.Rendezvous = func(addr string) ([]string, error) { return child.Rendezvous(addr, cancel) }
	o.OnStart = func() { _ = child.Send(launch.NodeReport{Started: true}) }
	o.Progress = new(jobprogress.Progress)
	stopProgress := sendProgress(child, o.Progress)
	res, err := node.Run(ctx, o)
	stopProgress()
	if err != nil {
		// Its own fault, reported even when the launcher is stopping the job
		// already (another node's failure, caused by this one, came first).
		if !errors.Is(err, context.Canceled) && !errors.Is(err, elastic.ErrQuorumLost) && !errors.Is(err, elastic.ErrEvicted) && !node.IsPeerFailure(err) {
			_ = child.Send(launch.NodeReport{Fault: err.Error()})
		}
		return err
	}
	rep := launch.NodeReport{Rank: res.Rank, Theta: res.ThetaSHA256, Steps: res.Steps, Model: res.Model, Summary: summary(res, cfg)}
	switch {
	case f.stats:
		rep.Extra = res.Stats.Summarize()
	case f.dataBench:
		rep.Extra = res.Data
	}
	return child.Send(rep)
}

// sendProgress sends p to the launcher every 250 ms while it changes, until
// the returned function is called (which sends the last state).
func sendProgress(child *launch.Child, p *jobprogress.Progress) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var last launch.Progress
	send := func() {
		s := p.Snapshot()
		lp := launch.Progress{Phase: s.Phase.String(), Step: s.Step, Steps: s.Steps, Epoch: s.Epoch,
			Loss: s.Loss, HasLoss: s.HasLoss, Samples: s.Samples, World: s.World, Rank: s.Rank}
		if lp != last {
			last = lp
			_ = child.Send(launch.NodeReport{Progress: &lp})
		}
	}
	changed := p.Changed()
	wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				send()
				return
			case <-t.C:
				send()
			case <-changed:
				send()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// summary is a node's account of its run for the launcher's last lines.
func summary(res *node.Result, cfg *config.Config) *launch.RunSummary {
	s := &launch.RunSummary{Steps: res.Steps, TrainLoss: res.Eval.TrainLoss, TestLoss: res.Eval.TestLoss,
		Metric: res.Eval.Metric, Value: res.Eval.Value, Recoveries: res.Recoveries, OutputDir: cfg.Output.Dir, Stopped: res.Stopped, Best: res.Best}
	if res.Stats != nil {
		s.WallSeconds = res.Stats.Wall.Seconds()
		if res.Stats.Wall > 0 {
			s.SamplesPerSec = float64(res.Stats.Samples) / res.Stats.Wall.Seconds()
		}
	}
	return s
}
