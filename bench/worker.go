package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc64"
	"io"
	"log/slog"
	"math"
	"net"
	"time"
	"unsafe"

	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/launch"
	"github.com/dmlrun/dmlrun/ring"
	"github.com/dmlrun/dmlrun/transport"
)

// AllReduceWorker is the body of one rank of a sweep (`dmlrun bench worker`,
// started by RunAllReduce). It speaks launch's protocol on stdin and stdout
// (see launch.Worker): the hello with its workerHello, the rendezvous of
// data-plane addresses, a Part per size (rank 0), then its result; it stops
// when stdin closes.
func AllReduceWorker(ctx context.Context, stdin io.Reader, stdout io.Writer, log *slog.Logger) error {
	w, err := launch.Attach[workerHello](stdin, stdout)
	if err != nil {
		return err
	}
	h := w.Payload
	o := h.Options
	if err := o.Validate(); err != nil {
		return err
	}
	op, _ := ring.ParseOp(o.Op)
	algo, _ := ring.ParseAlgorithm(o.Algorithm)
	protect, _ := transport.ParseProtection(o.Protect)
	log = log.With("rank", h.Rank)

	opts, _ := json.Marshal(o)
	digest := sha256.Sum256(opts)
	tcfg := transport.Config{Cluster: "dmlrun-bench", RunDigest: hex.EncodeToString(digest[:]),
		Secret: []byte(w.Hello.Secret), Spin: o.Spin, Protection: protect, Logger: log}
	ln, err := transport.Listen(net.JoinHostPort(h.Bind, "0"), tcfg)
	if err != nil {
		return err
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	addrs, err := w.Rendezvous(net.JoinHostPort(w.Hello.Host, port), cancel) // stdin closing stops the sweep
	if err != nil {
		return err
	}
	if len(addrs) != w.Hello.Nodes {
		return fmt.Errorf("launcher sent %d addresses for %d ranks", len(addrs), w.Hello.Nodes)
	}

	comm, err := elastic.NewComm(ctx, ln, elastic.CommConfig{Transport: tcfg, Timeout: o.Timeout,
		Ring: ring.Options{ChunkBytes: int(o.ChunkBytes), SmallBytes: int(o.SmallBytes), Algorithm: algo}}, h.Rank, addrs)
	if err != nil {
		return err
	}
	defer comm.Close()
	emit := func(r Row) error {
		if h.Rank != 0 {
			return nil
		}
		return w.SendPart(r)
	}
	if o.DType == "float64" {
		err = sweep[float64](ctx, comm, &o, op, emit)
	} else {
		err = sweep[float32](ctx, comm, &o, op, emit)
	}
	if err != nil {
		return err
	}
	return w.Send(launch.NodeReport{Rank: h.Rank, Extra: workerDone{Sizes: len(o.sizes())}})
}

var crcTable = crc64.MakeTable(crc64.ECMA)

// sweep times o.Iters out-of-place allreduces per size (after o.Warmup), then
// checks every element against the exact expected value and compares a
// checksum of the result across ranks.
func sweep[T ring.Float](ctx context.Context, c *elastic.Comm, o *AllReduceOptions, op ring.Op, emit func(Row) error) error {
	sizes := o.sizes()
	es := int64(o.elemSize())
	maxCount := sizes[len(sizes)-1] / es
	src, dst := make([]T, maxCount), make([]T, maxCount)
	for i := range src {
		src[i] = T(value(c.Rank(), i))
	}
	want := expectedTable(op, c.Size())
	stats := make([]float64, 3)
	wrong := make([]float64, 1)
	for _, b := range sizes {
		count := b / es
		s, d := src[:count], dst[:count]
		sctx, cancel := context.WithTimeout(ctx, o.Timeout)
		err := func() error {
			for range o.Warmup {
				if err := elastic.AllReduce(sctx, c, op, d, s); err != nil {
					return err
				}
			}
			if err := c.Barrier(sctx); err != nil {
				return err
			}
			t0 := time.Now()
			for range o.Iters {
				if err := elastic.AllReduce(sctx, c, op, d, s); err != nil {
					return err
				}
			}
			dt := time.Since(t0).Seconds() / float64(o.Iters)

			w := 0
			for i, x := range d {
				if float64(x) != want[i%valuePeriod] {
					w++
				}
			}
			sum := float64(crc64.Checksum(unsafe.Slice((*byte)(unsafe.Pointer(&d[0])), len(d)*int(es)), crcTable) >> 11)
			stats[0], stats[1], stats[2] = dt, sum, -sum // max time; max and min checksum
			wrong[0] = float64(w)
			if err := c.AllReduce(sctx, ring.Max, stats); err != nil {
				return err
			}
			return c.AllReduce(sctx, ring.Sum, wrong)
		}()
		cancel()
		if err != nil {
			return fmt.Errorf("size %d bytes: %w", b, err)
		}
		alg := float64(b) / stats[0] / 1e9
		if err := emit(Row{Bytes: b, Count: count, Type: o.DType, Op: o.Op, TimeUS: stats[0] * 1e6,
			AlgBW: alg, BusBW: busBW(alg, c.Size()), Wrong: int64(math.Round(wrong[0])), Identical: stats[1] == -stats[2]}); err != nil {
			return err
		}
	}
	return nil
}
