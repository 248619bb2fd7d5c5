package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"time"

	"github.com/dmlrun/dmlrun/launch"
	"github.com/dmlrun/dmlrun/ring"
	"github.com/dmlrun/dmlrun/transport"
)

// AllReduceOptions configure an allreduce sweep.
type AllReduceOptions struct {
	NP         int      `json:"np"`
	MinBytes   ByteSize `json:"min_bytes"`
	MaxBytes   ByteSize `json:"max_bytes"`
	Factor     int      `json:"factor"`
	DType      string   `json:"dtype"` // float32 or float64
	Op         string   `json:"op"`    // sum, min or max
	Iters      int      `json:"iters"`
	Warmup     int      `json:"warmup"`
	Algorithm  string   `json:"algorithm"` // auto, ring or rd
	ChunkBytes ByteSize `json:"chunk_bytes"`
	SmallBytes ByteSize `json:"small_bytes"`
	Spin       int      `json:"spin"`
	Protect    string   `json:"protect"` // frame protection: auto, none, mac or encrypt
	Bind       string   `json:"bind"`    // data-plane address of local workers (-np)
	// Hosts, when set, runs the workers on these hosts (over ssh where not
	// local) instead of NP local processes.
	Hosts  []launch.Host `json:"hosts,omitempty"`
	Remote launch.Remote `json:"-"`
	// Display, when set, shows the sweep's progress (one size at a time).
	Display *launch.Display `json:"-"`
	Timeout time.Duration   `json:"timeout"`
}

// DefaultAllReduceOptions are the defaults of `dmlrun bench allreduce`.
func DefaultAllReduceOptions() AllReduceOptions {
	return AllReduceOptions{NP: 2, MinBytes: 8, MaxBytes: 64 << 20, Factor: 4, DType: "float32", Op: "sum",
		Iters: 20, Warmup: 5, Algorithm: "auto", Protect: "auto", Bind: "127.0.0.1", Timeout: 60 * time.Second}
}

// Validate names the first bad option.
func (o *AllReduceOptions) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.NP < 1 || o.NP > 1024 {
		bad("-np %d: want 1 to 1024 processes", o.NP)
	}
	if o.MinBytes < 1 {
		bad("-min-bytes %v: want at least 1", o.MinBytes)
	}
	if o.MaxBytes < o.MinBytes {
		bad("-max-bytes %v is below -min-bytes %v", o.MaxBytes, o.MinBytes)
	}
	if o.MaxBytes > 4<<30 {
		bad("-max-bytes %v: at most 4G", o.MaxBytes)
	}
	if o.Factor < 2 {
		bad("-factor %d: want 2 or more", o.Factor)
	}
	if o.DType != "float32" && o.DType != "float64" {
		bad("-dtype %q: want float32 or float64", o.DType)
	}
	if _, err := ring.ParseOp(o.Op); err != nil {
		bad("-op: %v", err)
	}
	if _, err := ring.ParseAlgorithm(o.Algorithm); err != nil {
		bad("-algo: %v", err)
	}
	if _, err := transport.ParseProtection(o.Protect); err != nil {
		bad("-protect: %v", err)
	}
	if o.Iters < 1 {
		bad("-iters %d: want at least 1", o.Iters)
	}
	if o.Warmup < 0 {
		bad("-warmup %d: want 0 or more", o.Warmup)
	}
	if o.ChunkBytes < 0 || o.SmallBytes < 0 {
		bad("-chunk and -small must not be negative")
	}
	if o.Timeout <= 0 {
		bad("-timeout %v: want a positive duration", o.Timeout)
	}
	return errors.Join(errs...)
}

func (o *AllReduceOptions) elemSize() int {
	if o.DType == "float64" {
		return 8
	}
	return 4
}

// sizes lists the swept sizes in bytes, whole elements, from min to max.
func (o *AllReduceOptions) sizes() []int64 {
	es := int64(o.elemSize())
	var out []int64
	for b := int64(o.MinBytes); b <= int64(o.MaxBytes); b *= int64(o.Factor) {
		out = append(out, max(es, b/es*es))
	}
	return out
}

// Row is one line of the table.
type Row struct {
	Bytes     int64   `json:"size_bytes"`
	Count     int64   `json:"count"`
	Type      string  `json:"type"`
	Op        string  `json:"redop"`
	TimeUS    float64 `json:"time_us"`
	AlgBW     float64 `json:"algbw_gbs"`
	BusBW     float64 `json:"busbw_gbs"`
	Wrong     int64   `json:"wrong"`
	Identical bool    `json:"identical"` // every rank held the same bytes
}

// Result is a whole sweep.
type Result struct {
	NP       int              `json:"np"`
	Options  AllReduceOptions `json:"options"`
	Rows     []Row            `json:"rows"`
	AvgBusBW float64          `json:"avg_busbw_gbs"`
}

// workerHello is the first line a worker reads: its identity and the secret.
type workerHello struct {
	Host    string           `json:"host"` // the name peers reach it by
	Bind    string           `json:"bind"` // the address it listens on
	Rank    int              `json:"rank"`
	Size    int              `json:"size"`
	Secret  string           `json:"secret"`
	Options AllReduceOptions `json:"options"`
}

type workerMsg struct {
	Addr string `json:"addr,omitempty"`
	Row  *Row   `json:"row,omitempty"`
	Done bool   `json:"done,omitempty"`
}

type addrList struct {
	Addrs []string `json:"addrs"`
}

// RunAllReduce runs the sweep with o.NP local worker processes (argv starts
// one), or on o.Hosts, writes the table to out as rows arrive, and returns
// the result. Worker logs go to log.
func RunAllReduce(ctx context.Context, o AllReduceOptions, argv []string, out, log io.Writer) (*Result, error) {
	var slots []launch.Slot
	if len(o.Hosts) > 0 {
		slots = launch.Slots(o.Hosts)
		o.NP = len(slots)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	specs := make([]launch.Spec, o.NP)
	hellos := make([]workerHello, o.NP)
	for r := range specs {
		specs[r] = launch.Spec{Label: fmt.Sprint(r), Argv: argv}
		hellos[r] = workerHello{Host: o.Bind, Bind: o.Bind}
		if slots != nil {
			s := slots[r]
			specs[r] = launch.Spec{Label: s.Label(), Argv: o.Remote.Command(s.Host, argv[1:])}
			host, _, _ := net.SplitHostPort(s.BindAddr(0))
			hellos[r] = workerHello{Host: s.Host.Name, Bind: host}
		}
	}
	g, err := launch.Start(ctx, specs, log)
	if err != nil {
		return nil, err
	}
	defer g.Stop()
	secret := string(transport.GenerateSecret())
	for r := range o.NP {
		h := hellos[r]
		h.Rank, h.Size, h.Secret, h.Options = r, o.NP, secret, o
		if err := g.Send(r, h); err != nil {
			return nil, err
		}
	}

	// Rendezvous: every worker reports its data-plane address, then learns all.
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	addrs := make([]string, o.NP)
	for got := 0; got < o.NP; {
		ev, err := g.Next(startCtx)
		if err != nil {
			return nil, fmt.Errorf("waiting for workers to start: %w (%d of %d reported)", err, got, o.NP)
		}
		if ev.Exited {
			return nil, fmt.Errorf("before the benchmark started: %w", launch.ExitError("rank "+g.Label(ev.Index), orExit(ev.Err)))
		}
		var m workerMsg
		if err := json.Unmarshal(ev.Line, &m); err != nil || m.Addr == "" {
			continue
		}
		if addrs[ev.Index] == "" {
			got++
		}
		addrs[ev.Index] = m.Addr
	}
	for r := range o.NP {
		if err := g.Send(r, addrList{Addrs: addrs}); err != nil {
			return nil, err
		}
	}

	res := &Result{NP: o.NP, Options: o}
	writeHeader(out, o)
	progress := func() {
		if o.Display != nil {
			o.Display.Update(launch.Progress{Phase: "allreduce sweep", Unit: "size", Step: len(res.Rows), Steps: len(o.sizes()), World: o.NP})
		}
	}
	progress()
	done, exited := false, 0
	var failures []error
	for exited < o.NP {
		ev, err := g.Next(ctx)
		if err != nil {
			return res, fmt.Errorf("benchmark interrupted: %w", err)
		}
		if ev.Exited {
			exited++
			if ev.Err != nil {
				failures = append(failures, launch.ExitError("rank "+g.Label(ev.Index), ev.Err))
				g.Stop() // one rank failed: the others cannot finish
			}
			continue
		}
		var m workerMsg
		if json.Unmarshal(ev.Line, &m) != nil {
			continue
		}
		if m.Row != nil {
			res.Rows = append(res.Rows, *m.Row)
			writeRow(out, *m.Row)
			progress()
		}
		done = done || m.Done
	}
	if len(failures) > 0 {
		return res, errors.Join(failures...)
	}
	if !done {
		return res, errors.New("workers exited before finishing the sweep")
	}
	var sum float64
	for _, r := range res.Rows {
		sum += r.BusBW
	}
	if len(res.Rows) > 0 {
		res.AvgBusBW = sum / float64(len(res.Rows))
	}
	fmt.Fprintf(out, "# Avg bus bandwidth : %.4g\n", res.AvgBusBW)
	var wrong int64
	identical := true
	for _, r := range res.Rows {
		wrong += r.Wrong
		identical = identical && r.Identical
	}
	if wrong > 0 || !identical {
		return res, fmt.Errorf("%d wrong elements; every rank identical: %v", wrong, identical)
	}
	return res, nil
}

func orExit(err error) error {
	if err == nil {
		return errors.New("exited")
	}
	return err
}

func writeHeader(w io.Writer, o AllReduceOptions) {
	fmt.Fprintf(w, "# dmlrun allreduce: %d ranks, %s, op %s, algorithm %s, %d iterations after %d warm-up\n",
		o.NP, o.DType, o.Op, o.Algorithm, o.Iters, o.Warmup)
	fmt.Fprintf(w, "#%11s %15s %8s %6s %11s %11s %11s %7s\n", "size(B)", "count(elements)", "type", "redop", "time(us)", "algbw(GB/s)", "busbw(GB/s)", "#wrong")
}

func writeRow(w io.Writer, r Row) {
	fmt.Fprintf(w, "%12d %15d %8s %6s %11.2f %11.3f %11.3f %7d\n", r.Bytes, r.Count, r.Type, r.Op, r.TimeUS, r.AlgBW, r.BusBW, r.Wrong)
}

// busBW converts algbw to busbw (nccl-tests' definition for allreduce).
func busBW(alg float64, n int) float64 {
	if n < 2 {
		return alg
	}
	return alg * 2 * float64(n-1) / float64(n)
}

// value is what rank r puts at index i: small integers, so that every
// summation order gives the exact result. It repeats every valuePeriod
// elements.
func value(r, i int) float64 { return float64((i*7+r*13)%valuePeriod - 15) }

const valuePeriod = 31

// expectedTable is the exact result at indices 0..valuePeriod-1.
func expectedTable(op ring.Op, n int) []float64 {
	t := make([]float64, valuePeriod)
	for i := range t {
		t[i] = expected(op, n, i)
	}
	return t
}

func expected(op ring.Op, n, i int) float64 {
	v := value(0, i)
	for r := 1; r < n; r++ {
		switch op {
		case ring.Sum:
			v += value(r, i)
		case ring.Min:
			v = math.Min(v, value(r, i))
		case ring.Max:
			v = math.Max(v, value(r, i))
		}
	}
	return v
}
