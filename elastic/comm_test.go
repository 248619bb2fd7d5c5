package elastic

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/dmlrun/dmlrun/ring"
	"github.com/dmlrun/dmlrun/transport"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testConfig() CommConfig {
	return CommConfig{
		Transport: transport.Config{Cluster: "test", RunDigest: "d1", Secret: []byte("s3cret"),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		Timeout: 20 * time.Second,
	}
}

// startComms connects n ranks over real TCP on 127.0.0.1 ephemeral ports.
func startComms(t testing.TB, n int, cfg CommConfig) []*Comm {
	t.Helper()
	return startCommsWith(t, n, cfg, nil, nil)
}

// startCommsWith is startComms with rank r's config edited by edit (if
// set) and after (if set) run on each rank's new Comm, concurrently.
func startCommsWith(t testing.TB, n int, cfg CommConfig, edit func(r int, c *CommConfig), after func(r int, c *Comm) error) []*Comm {
	t.Helper()
	lns := make([]*transport.Listener, n)
	addrs := make([]string, n)
	for r := range n {
		ln, err := transport.Listen("127.0.0.1:0", cfg.Transport)
		if err != nil {
			t.Fatal(err)
		}
		lns[r], addrs[r] = ln, ln.Addr().String()
		t.Cleanup(func() { ln.Close() })
	}
	comms := make([]*Comm, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Go(func() {
			rc := cfg
			if edit != nil {
				edit(r, &rc)
			}
			comms[r], errs[r] = NewComm(context.Background(), lns[r], rc, r, addrs)
			if errs[r] == nil && after != nil {
				errs[r] = after(r, comms[r])
			}
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range comms {
			if c != nil {
				c.Close()
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return comms
}

// parallel runs f on every rank concurrently and returns the errors.
func parallel(comms []*Comm, f func(c *Comm) error) []error {
	errs := make([]error, len(comms))
	var wg sync.WaitGroup
	for i, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(c)
		}()
	}
	wg.Wait()
	return errs
}

func bytesOf[T ring.Float](v []T) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*int(unsafe.Sizeof(v[0])))
}

// TestAllReduceTCP runs every collective over real sockets, for odd lengths
// and one vector bigger than many pieces, and checks exact results and
// identical bytes on every rank.
func TestAllReduceTCP(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 5} {
		t.Run(fmt.Sprint("n=", n), func(t *testing.T) {
			cfg := testConfig()
			cfg.Ring.ChunkBytes = 4096
			comms := startComms(t, n, cfg)
			for _, length := range []int{0, 1, n - 1, n + 1, 1000, 300_001} {
				out := make([][]float32, n)
				errs := parallel(comms, func(c *Comm) error {
					buf := make([]float32, length)
					for i := range buf {
						buf[i] = float32((i%7)*(c.Rank()+1) - 3)
					}
					out[c.Rank()] = buf
					return AllReduce(context.Background(), c, ring.Sum, buf, buf)
				})
				if err := errors.Join(errs...); err != nil {
					t.Fatalf("len %d: %v", length, err)
				}
				for i := range length {
					want := float32((i%7)*n*(n+1)/2 - 3*n)
					if out[0][i] != want {
						t.Fatalf("len %d: [%d] = %v, want %v", length, i, out[0][i], want)
					}
				}
				for r := 1; r < n; r++ {
					if !bytes.Equal(bytesOf(out[r]), bytesOf(out[0])) {
						t.Fatalf("len %d: rank %d holds other bytes than rank 0", length, r)
					}
				}
			}
			errs := parallel(comms, func(c *Comm) error {
				v := []float64{float64(c.Rank()), 7}
				if err := c.Broadcast(context.Background(), n-1, v); err != nil {
					return err
				}
				if v[0] != float64(n-1) {
					return fmt.Errorf("broadcast: got %v", v)
				}
				return c.Barrier(context.Background())
			})
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
		})
	}
}
