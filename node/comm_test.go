package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

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
