package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dmlrun/dmlrun/data"
	"github.com/dmlrun/dmlrun/launch"
	"github.com/dmlrun/dmlrun/node"
	"github.com/dmlrun/dmlrun/train"
)

const predictUsage = `usage: dmlrun predict -model model.json [-o FILE | -o DIR/] [-np N | -hosts FILE | -H LIST] data...

Predictions of a trained model, one line per input row, in input order. data
is one or more files, directories or glob patterns (CSV, LIBSVM or Parquet,
gzip read on the fly), which together form one data set, as in training.

Without -np/-hosts/-H one process reads every row. With them the rows are
split over N processes started as training starts its nodes (locally, or
over ssh on every listed host); each parses only its own rows and sends its
predictions back to this launcher, which writes them in input order:
  -o FILE   one file, byte for byte what one process writes (default: standard output)
  -o DIR/   one file per node, DIR/part-00000.csv ..., so cat DIR/part-* is that file
Outputs are written atomically (a temporary file, renamed once complete):
a failed run leaves none. A run ends with a line on standard error:
  done: 2000000 rows in 987ms (2025697 rows/s), 4 nodes, predictions in out.csv
A worker that fails (a bad row: the error names file and line) or dies
(kill -9) stops the run: no output is written, and the failure summary
names the worker and exits with its status (128+N for signal N).

flags:
`

// predictFlags are the flags of `dmlrun predict`.
type predictFlags struct {
	model, out, format  string
	np                  int
	hostsFile, hostList string
	ssh, remoteBin      string
	logDir              string
	verbose             bool
	progress            launch.ProgressMode
	paths               []string
	// A worker started by the launcher (internal).
	launched    bool
	rank, nodes int
}

func (f predictFlags) distributed() bool { return f.np != 0 || f.hostsFile != "" || f.hostList != "" }

func parsePredict(args []string, stderr io.Writer) (predictFlags, error) {
	var f predictFlags
	fs := flag.NewFlagSet("dmlrun predict", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), predictUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.model, "model", "", "model.json written by a training run (required)")
	fs.StringVar(&f.out, "o", "", "write the predictions to `FILE`, or one part file per node to DIR/ (a trailing slash or an existing directory); default: standard output")
	fs.StringVar(&f.format, "format", "", "csv, libsvm or parquet (default: guessed from the file names)")
	fs.IntVar(&f.np, "np", 0, "split the rows over N local processes")
	fs.StringVar(&f.hostsFile, "hosts", "", "hosts file: split the rows over processes on every listed host, started over ssh (see hosts.example)")
	fs.StringVar(&f.hostList, "H", "", "hosts inline: h1:2,h2:2")
	fs.StringVar(&f.ssh, "ssh", "ssh", "ssh client command for remote hosts, e.g. \"ssh -p 2222 -i key\"")
	fs.StringVar(&f.remoteBin, "remote-bin", "", "dmlrun binary on the remote hosts (default: this binary's path)")
	fs.StringVar(&f.logDir, "log-dir", "", "where each node's full log goes, as rank-N.log (default: a new directory under $TMPDIR)")
	fs.BoolVar(&f.verbose, "v", false, "show every node's full log on the terminal, each line prefixed with its node")
	progress := fs.String("progress", "auto", "progress display: auto, bar, plain or none")
	fs.BoolVar(&f.launched, "launched", false, "internal: a worker started by a dmlrun predict launcher")
	fs.IntVar(&f.rank, "rank", 0, "internal: the worker's rank (its place in the row order)")
	fs.IntVar(&f.nodes, "nodes", 1, "internal: how many workers share the rows")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	f.paths = fs.Args()
	var err error
	if f.progress, err = launch.ParseProgressMode(*progress); err != nil {
		return f, err
	}
	switch {
	case f.model == "":
		return f, errors.New("-model is required, e.g. -model runs/demo/model.json")
	case len(f.paths) == 0:
		return f, errors.New("no data given: name one or more files, directories or glob patterns")
	case f.launched && (f.nodes < 1 || f.rank < 0 || f.rank >= f.nodes):
		return f, fmt.Errorf("-rank %d -nodes %d: want 0 <= rank < nodes", f.rank, f.nodes)
	case f.np < 0 || f.np > 256:
		return f, fmt.Errorf("-np %d: want 1 to 256 local processes", f.np)
	case f.np > 0 && (f.hostsFile != "" || f.hostList != ""):
		return f, errors.New("give one of -np N, -hosts FILE or -H LIST")
	case len(strings.Fields(f.ssh)) == 0:
		return f, errors.New("-ssh is empty")
	}
	return f, nil
}

// predictCmd runs `dmlrun predict`: in this process, or split over the
// processes of -np/-hosts/-H, or as one of those (-launched).
func predictCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	f, err := parsePredict(args, stderr)
	if err != nil {
		return usageErr(err)
	}
	switch {
	case f.launched:
		return predictWorker(ctx, f, stdin, stdout, stderr)
	case f.distributed():
		return predictLaunch(ctx, f, stdout, stderr)
	}
	return predictLocal(ctx, f, stdout)
}

// predictLocal predicts every row in this process.
func predictLocal(ctx context.Context, f predictFlags, stdout io.Writer) error {
	mf, m, err := train.ReadModelFile(f.model)
	if err != nil {
		return err
	}
	src, err := data.Open(ctx, data.Spec{Paths: f.paths, Format: f.format, Unlabeled: true})
	if err != nil {
		return err
	}
	if f.out == "" { // straight to standard output, as it goes
		return mf.Predict(ctx, m, src, stdout)
	}
	out, err := openPredictOutput(f.out, 1)
	if err != nil {
		return err
	}
	defer out.abort()
	if err := mf.Predict(ctx, m, src, out.parts[0]); err != nil {
		return err
	}
	return out.commit(stdout)
}

// predictStats is a worker's result: its rows, and what it took.
type predictStats struct {
	Rank      int     `json:"rank"`
	FirstRow  int     `json:"first_row"`
	Rows      int     `json:"rows"`
	TotalRows int     `json:"total_rows"`
	Seconds   float64 `json:"seconds"`
}

// predictPiece is how many bytes of predictions a worker sends to the
// launcher in one line (cut at the last whole row).
const predictPiece = 256 << 10

// predictWorker is one process of a distributed predict: it indexes the
// data set with the others (sums relayed by the launcher), predicts the rows
// of its part (a contiguous run of virtual shards, in row order), and sends
// the lines to the launcher as it goes.
func predictWorker(ctx context.Context, f predictFlags, stdin io.Reader, stdout, stderr io.Writer) error {
	start := time.Now()
	level := slog.LevelInfo
	if f.verbose {
		level = slog.LevelDebug
	}
	child := launch.NewChild(stdin, stdout)
	log := slog.New(launch.NewNoticeHandler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}), node.NoticeKey,
		func(l launch.LogLine) { _ = child.Send(launch.NodeReport{Log: &l}) }))
	var hello launch.NodeHello
	if err := child.Recv(&hello); err != nil {
		return fmt.Errorf("reading the launcher's hello: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := predictPart(ctx, f, child, stdout, log, cancel)
	if err != nil {
		// Its own fault (a bad row, a missing column), unless the launcher
		// stopped the job (because of another node).
		if errors.Is(err, launch.ErrLauncherGone) || ctx.Err() != nil {
			log.Info("stopped by the launcher", "rank", f.rank, "err", err)
			return err
		}
		_ = child.Send(launch.NodeReport{Rank: f.rank, Fault: err.Error()})
		log.Error("predict failed", "rank", f.rank, "err", err)
		return err
	}
	st.Seconds = time.Since(start).Seconds()
	log.Info("done", "rank", f.rank, "rows", st.Rows, "seconds", st.Seconds)
	return child.Send(launch.NodeReport{Rank: f.rank, Extra: st})
}

// predictPart is the work of predictWorker.
func predictPart(ctx context.Context, f predictFlags, child *launch.Child, stdout io.Writer, log *slog.Logger, cancel func()) (predictStats, error) {
	st := predictStats{Rank: f.rank}
	mf, m, err := train.ReadModelFile(f.model)
	if err != nil {
		return st, err
	}
	src, err := data.Open(ctx, data.Spec{Paths: f.paths, Format: f.format, Unlabeled: true,
		Shards: max(data.DefaultShards, f.nodes), Rank: f.rank, Nodes: f.nodes, Exchange: child.Exchange})
	if err != nil {
		return st, err
	}
	go child.WatchEOF(cancel) // from now on nothing more comes from the launcher
	part := src.Sharding().Part(f.rank, f.nodes)
	st.FirstRow, st.Rows, st.TotalRows = part.FirstRow, part.Len(), src.Rows()
	log.Info("predicting", "rank", f.rank, "rows", part.Len(), "first_row", part.FirstRow, "of", src.Rows(), "shards", part.EndShard-part.FirstShard, node.NoticeKey, f.verbose)
	w := &pieceWriter{child: child, raw: stdout, buf: make([]byte, 0, predictPiece+64<<10),
		tear: node.FaultHit(fmt.Sprintf("predict-torn/%d", f.rank)), hold: node.FaultHit(fmt.Sprintf("predict-hold/%d", f.rank))}
	if w.hold {
		w.held = func() {
			log.Info("holding after the first piece (test)", "rank", f.rank, node.NoticeKey, true)
			<-ctx.Done()
		}
	}
	if err := mf.PredictShards(ctx, m, src, part.Shards(), w); err != nil {
		return st, err
	}
	if err := w.flush(); err != nil {
		return st, err
	}
	return st, ctx.Err()
}

// pieceWriter sends what is written to it to the launcher as Output pieces
// of about predictPiece bytes, each cut after a newline.
type pieceWriter struct {
	child *launch.Child
	buf   []byte
	sent  int
	// Test faults (see node.FaultHit): tear writes half of its second piece
	// and kills the process; hold waits, after the first piece, in held.
	raw        io.Writer
	tear, hold bool
	held       func()
}

func (p *pieceWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	if len(p.buf) < predictPiece {
		return len(b), nil
	}
	cut := bytes.LastIndexByte(p.buf, '\n') + 1
	if cut == 0 {
		return len(b), nil
	}
	if err := p.send(p.buf[:cut]); err != nil {
		return 0, err
	}
	p.buf = p.buf[:copy(p.buf, p.buf[cut:])]
	return len(b), nil
}

// flush sends the rest (whole lines: the predictions end with a newline).
func (p *pieceWriter) flush() error {
	if len(p.buf) == 0 {
		return nil
	}
	err := p.send(p.buf)
	p.buf = p.buf[:0]
	return err
}

func (p *pieceWriter) send(b []byte) error {
	if p.tear && p.sent == 1 {
		line, _ := json.Marshal(launch.NodeReport{Output: string(b)})
		_, _ = p.raw.Write(line[:len(line)/2])
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	err := p.child.SendOutput(b)
	p.sent++
	if p.hold && p.sent == 1 {
		p.held()
	}
	return err
}

// predictLaunch runs a distributed predict: one worker per slot of
// -np/-hosts/-H, started and supervised by package launch as training's
// nodes are, each sending the predictions of its rows; they are written in
// input order.
func predictLaunch(ctx context.Context, f predictFlags, stdout, stderr io.Writer) error {
	start := time.Now()
	if _, _, err := train.ReadModelFile(f.model); err != nil { // fail here, once, rather than in every worker
		return err
	}
	var hosts []launch.Host
	var err error
	if f.np > 0 {
		hosts = []launch.Host{{Name: "127.0.0.1", Slots: f.np}}
	} else if hosts, err = parseHosts(f.hostsFile, f.hostList); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// The same paths must be readable on every host.
	model, err := filepath.Abs(f.model)
	if err != nil {
		return err
	}
	paths := make([]string, len(f.paths))
	for i, p := range f.paths {
		if paths[i], err = filepath.Abs(p); err != nil {
			return err
		}
	}
	allLocal := true
	for _, h := range hosts {
		allLocal = allLocal && h.IsLocal()
	}
	if allLocal { // the workers read these very paths: a missing one fails here, once
		if _, err := data.ExpandPaths(paths); err != nil {
			return err
		}
	}
	slots := launch.Slots(hosts)
	n := len(slots)
	out, err := openPredictOutput(f.out, n)
	if err != nil {
		return err
	}
	defer out.abort()
	logDir, keepLogs := f.logDir, true
	if logDir == "" { // kept only when the run fails
		if logDir, err = os.MkdirTemp("", "dmlrun-predict-logs-"); err != nil {
			return fmt.Errorf("log directory: %w", err)
		}
		keepLogs = false
	}
	logs, closeLogs, err := openLogs(logDir, n)
	if err != nil {
		return err
	}
	defer closeLogs()
	defer func() {
		if !keepLogs {
			closeLogs()
			os.RemoveAll(logDir)
		}
	}()
	remote := launch.Remote{SSH: strings.Fields(f.ssh), Bin: f.remoteBin, Self: self}
	specs := make([]launch.Spec, n)
	hellos := make([]launch.NodeHello, n)
	writers := make([]io.Writer, n)
	for i, s := range slots {
		args := []string{"predict", "-launched", "-rank", fmt.Sprint(i), "-nodes", fmt.Sprint(n), "-model", model}
		if f.format != "" {
			args = append(args, "-format", f.format)
		}
		if f.verbose {
			args = append(args, "-v")
		}
		args = append(append(args, "--"), paths...)
		label := s.Label()
		if f.np > 0 {
			label = fmt.Sprint(s.Rank)
		}
		specs[i] = launch.Spec{Label: label, Argv: remote.Command(s.Host, args), Log: logs[i]}
		hellos[i] = launch.NodeHello{Host: s.Host.Name, Slot: s.Slot, Nodes: n}
		writers[i] = out.writers[i]
	}
	d := launch.NewDisplay(stderr, f.progress)
	defer d.Close()
	res, err := launch.RunJob(ctx, launch.Job{Specs: specs, Hellos: hellos, Out: stderr, Display: d,
		Verbose: f.verbose, Output: writers, Phase: "predicting"})
	if err != nil {
		keepLogs = true // a *launch.JobError stays the cause, for the exit status
		return fmt.Errorf("%w\n  no output written; every node's log is in %s", err, logDir)
	}
	if len(res.Reports) != n {
		return fmt.Errorf("%d of %d workers reported their result; no output written", len(res.Reports), n)
	}
	total := 0
	for i, rep := range res.Reports {
		var st predictStats
		raw, _ := json.Marshal(rep.Extra)
		if err := json.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("node %s sent no result; no output written", specs[i].Label)
		}
		if got := out.writers[i].rows; got != int64(st.Rows) || st.FirstRow != total {
			return fmt.Errorf("node %s: rows %d.. (%d of them) predicted, but %d lines arrived after row %d; no output written", specs[i].Label, st.FirstRow, st.Rows, got, total)
		}
		total += st.Rows
		if i == n-1 && total != st.TotalRows {
			return fmt.Errorf("the workers predicted %d of %d rows; no output written", total, st.TotalRows)
		}
	}
	if err := out.commit(stdout); err != nil {
		return err
	}
	wall := time.Since(start)
	where := "on standard output"
	switch {
	case out.dir != "":
		where = fmt.Sprintf("in %s (%d part files)", out.dir, n)
	case out.path != "":
		where = "in " + out.path
	}
	logNote := ""
	if keepLogs {
		logNote = "; logs in " + logDir
	}
	fmt.Fprintf(stderr, "done: %d rows in %v (%.0f rows/s), %d nodes, predictions %s%s\n",
		total, wall.Round(time.Millisecond), float64(total)/wall.Seconds(), n, where, logNote)
	return nil
}
