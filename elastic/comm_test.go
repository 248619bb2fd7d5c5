package elastic_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"unsafe"

	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/elastic/elastictest"
	"github.com/dmlrun/dmlrun/ring"
)

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
			cfg := elastictest.Config()
			cfg.Ring.ChunkBytes = 4096
			comms := elastictest.Comms(t, n, cfg)
			for _, length := range []int{0, 1, n - 1, n + 1, 1000, 300_001} {
				out := make([][]float32, n)
				errs := elastictest.Parallel(comms, func(c *elastic.Comm) error {
					buf := make([]float32, length)
					for i := range buf {
						buf[i] = float32((i%7)*(c.Rank()+1) - 3)
					}
					out[c.Rank()] = buf
					return elastic.AllReduce(context.Background(), c, ring.Sum, buf, buf)
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
			errs := elastictest.Parallel(comms, func(c *elastic.Comm) error {
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
