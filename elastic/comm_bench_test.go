package elastic_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/elastic/elastictest"
	"testing"

	"github.com/dmlrun/dmlrun/ring"
)

// BenchmarkAllReduce measures allreduce of float32 vectors between ranks in
// one process over loopback TCP (the bench command runs one process per rank).
func BenchmarkAllReduce(b *testing.B) {
	for _, n := range []int{2, 4} {
		for _, bytes := range []int{8, 64 << 10, 16 << 20} {
			b.Run(fmt.Sprintf("n=%d/%dB", n, bytes), func(b *testing.B) {
				comms := elastictest.Comms(b, n, elastictest.Config())
				bufs := make([][]float32, n)
				for r := range bufs {
					bufs[r] = make([]float32, bytes/4)
				}
				b.SetBytes(int64(bytes))
				b.ReportAllocs()
				b.ResetTimer()
				errs := elastictest.Parallel(comms, func(c *elastic.Comm) error {
					for range b.N {
						if err := elastic.AllReduce(context.Background(), c, ring.Max, bufs[c.Rank()], bufs[c.Rank()]); err != nil {
							return err
						}
					}
					return nil
				})
				if err := errors.Join(errs...); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
