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

// workerHello is the payload of a rank's hello (launch.NodeHello.Extra):
// NodeHello carries the name peers reach it by (Host), the number of ranks
// (Nodes) and the secret.
type workerHello struct {
	Bind    string           `json:"bind"` // the address it listens on
	Rank    int              `json:"rank"`
	Options AllReduceOptions `json:"options"`
}

// workerDone is a rank's result (launch.NodeReport.Extra): it finished
// every size. Rank 0 sent each size's Row before it (NodeReport.Part).
type workerDone struct {
	Sizes int `json:"sizes"`
}

// RunAllReduce runs the sweep with o.NP local worker processes (argv starts
// one), or on o.Hosts, writes the table to out as rows arrive, and returns
// the result. Worker logs go to log. The workers are started, introduced to
// each other and supervised by launch.RunJob, as a training job's nodes are:
// a rank that fails fails the sweep with a *launch.JobError naming it.
func RunAllReduce(ctx context.Context, o AllReduceOptions, argv []string, out, log io.Writer) (*Result, error) {
	var slots []launch.Slot
	if len(o.Hosts) > 0 {
		slots = launch.Slots(o.Hosts)
		o.NP = len(slots)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	secret := string(transport.GenerateSecret())
	specs := make([]launch.Spec, o.NP)
	hellos := make([]launch.NodeHello, o.NP)
	for r := range specs {
		specs[r] = launch.Spec{Label: fmt.Sprint(r), Argv: argv}
		host, bind, slot := o.Bind, o.Bind, r // -np: one host, slot = rank
		if slots != nil {
			s := slots[r]
			specs[r] = launch.Spec{Label: s.Label(), Argv: o.Remote.Command(s.Host, argv[1:])}
			host, slot = s.Host.Name, s.Slot
			bind, _, _ = net.SplitHostPort(s.BindAddr(0))
		}
		hellos[r] = launch.NodeHello{Secret: secret, Host: host, Slot: slot, Nodes: o.NP,
			Extra: workerHello{Bind: bind, Rank: r, Options: o}}
	}

	res := &Result{NP: o.NP, Options: o}
	progress := func() {
		if o.Display != nil {
			o.Display.Update(launch.Progress{Phase: "allreduce sweep", Unit: "size", Step: len(res.Rows), Steps: len(o.sizes()), World: o.NP})
		}
	}
	job := launch.Job{Specs: specs, Hellos: hellos, Display: o.Display, Log: log, Noun: "rank", StartTimeout: 30 * time.Second,
		OnJoined: func() { // every rank is listening: the table starts
			writeHeader(out, o)
			progress()
		},
		OnPart: func(_ int, part json.RawMessage) {
			var r Row
			if json.Unmarshal(part, &r) != nil {
				return
			}
			res.Rows = append(res.Rows, r)
			writeRow(out, r)
			progress()
		}}
	if _, err := launch.RunJob(ctx, job); err != nil {
		if ctx.Err() != nil {
			return res, fmt.Errorf("benchmark interrupted: %w", ctx.Err())
		}
		return res, err
	}
	if len(res.Rows) != len(o.sizes()) {
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
