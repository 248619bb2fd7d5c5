package elastic

import (
	"context"
	"encoding/binary"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestGossipStreamsCapped: strangers open many gossip streams at once, each
// sending an "encrypted state" of 16 MiB that memberlist would buffer whole
// before it could tell it is garbage. At most maxGossipStreams are read at
// a time, each only up to maxGossipStreamBytes, so the heap stays small;
// the excess is refused; and gossip still works: a new member joins
// meanwhile.
func TestGossipStreamsCapped(t *testing.T) {
	a := startMember(t, "a", 0, "d")
	const streams, claim = 40, 16 << 20
	header := []byte{244, byte(len("test"))} // memberlist's label header, then the label
	header = append(header, "test"...)
	header = append(header, 10) // encryptMsg
	header = binary.BigEndian.AppendUint32(header, claim)
	junk := make([]byte, 1<<20)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var peak uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // the heap's high-water mark while the flood lasts
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stopSampling:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	var wg sync.WaitGroup
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", a.Addr(), 5*time.Second)
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := c.Write(header); err != nil {
				return
			}
			for sent := 0; sent < claim; sent += len(junk) {
				if _, err := c.Write(junk); err != nil {
					return // refused or cut off: as it should be
				}
			}
		}()
	}
	b := startMember(t, "b", 0, "d") // gossip goes on under the flood
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.Join(ctx, []string{a.Addr()}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WaitFor(ctx, 2); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(stopSampling)
	<-sampled
	grew := int64(peak) - int64(before.HeapInuse)
	t.Logf("%d streams claiming %d MiB each: heap grew by at most %.1f MiB; %d refused at once", streams, claim>>20, float64(grew)/(1<<20), a.net.refused.Load())
	if bound := int64(maxGossipStreams) * 3 * maxGossipStreamBytes; grew > bound {
		t.Fatalf("the heap grew by %d MiB under the flood, more than %d MiB", grew>>20, bound>>20)
	}
}
