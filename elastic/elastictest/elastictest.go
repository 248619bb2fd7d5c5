// Package elastictest starts communicators for tests: n ranks connected
// over loopback TCP in one process, as httptest starts servers.
package elastictest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/transport"
)

// Config is a CommConfig for tests: cluster "test", a fixed secret, a
// silent logger and a 20 s timeout.
func Config() elastic.CommConfig {
	return elastic.CommConfig{
		Transport: transport.Config{Cluster: "test", RunDigest: "d1", Secret: []byte("s3cret"),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		Timeout: 20 * time.Second,
	}
}

// Members names the ranks at addrs as a Group would: m0, m1, ... on host
// "h", slot = rank, data plane at the address.
func Members(addrs []string) []elastic.Member {
	ms := make([]elastic.Member, len(addrs))
	for r, a := range addrs {
		ms[r] = elastic.Member{Name: fmt.Sprint("m", r), Meta: elastic.Meta{Host: "h", Slot: r, Data: a}}
	}
	return ms
}

// Comms connects n ranks over real TCP on 127.0.0.1 ephemeral ports; they
// are closed when the test ends.
//
//	comms := elastictest.Comms(t, 3, elastictest.Config())
//	errs := elastictest.Parallel(comms, func(c *elastic.Comm) error { return c.AllReduce(ctx, ring.Sum, v[c.Rank()]) })
func Comms(t testing.TB, n int, cfg elastic.CommConfig) []*elastic.Comm {
	t.Helper()
	return CommsWith(t, n, cfg, nil, nil)
}

// CommsWith is Comms with rank r's config edited by edit (if set) and
// after (if set) run on each rank's new Comm, concurrently.
func CommsWith(t testing.TB, n int, cfg elastic.CommConfig, edit func(r int, c *elastic.CommConfig), after func(r int, c *elastic.Comm) error) []*elastic.Comm {
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
	comms := make([]*elastic.Comm, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Go(func() {
			rc := cfg
			if rc.Members == nil {
				rc.Members = Members(addrs)
			}
			if edit != nil {
				edit(r, &rc)
			}
			comms[r], errs[r] = elastic.NewComm(context.Background(), lns[r], rc, r, addrs)
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

// Parallel runs f on every rank concurrently and returns the errors, by
// rank.
func Parallel(comms []*elastic.Comm, f func(c *elastic.Comm) error) []error {
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
