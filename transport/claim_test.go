package transport

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// waitForStacks waits (at most timeout) until at least n goroutines' stacks
// contain frame.
func waitForStacks(t testing.TB, frame string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1<<20)
	for {
		k := runtime.Stack(buf, true)
		if bytes.Count(buf[:k], []byte(frame)) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d goroutines entered %s within %v", n, frame, timeout)
		}
		time.Sleep(time.Millisecond) // poll: a stack dump stops the world
	}
}

// exchangeRing sends one frame around the ring of meshes (rank r to r+1)
// and checks that every rank got its predecessor's bytes.
func exchangeRing(t *testing.T, meshes []*Mesh, seq uint64) {
	t.Helper()
	n := len(meshes)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tos, froms := make([]int, n), make([]int, n)
	sends, recvs := make([][]byte, n), make([][]byte, n)
	for r := range n {
		tos[r], froms[r] = (r+1)%n, (r+n-1)%n
		sends[r], recvs[r] = make([]byte, 64), make([]byte, 64)
		fill(sends[r], r, seq)
	}
	if err := runExchanges(ctx, meshes, tos, froms, sends, recvs, seq, 0); err != nil {
		t.Fatalf("exchange around the ring: %v", err)
	}
	for r := range n {
		if !bytes.Equal(recvs[r], sends[froms[r]]) {
			t.Fatalf("rank %d got bytes that rank %d did not send", r, froms[r])
		}
	}
}

// TestConnectAttemptsOfOneEpoch: attempts of one ring epoch follow each
// other (a ring re-formed from the same view has the same epoch), and the
// ranks start and abandon them at different moments. A link is up only
// once both ends use it in their current attempt: a rank whose peer is not
// connecting does not get a mesh, and a later attempt never holds a
// connection of an earlier one.
func TestConnectAttemptsOfOneEpoch(t *testing.T) {
	tests := []struct {
		name string
		// earlier runs the earlier attempts of rank 0 (which dials) with
		// its peers' listeners up but the peers not connecting; each must
		// fail at its deadline, leaving its connection behind.
		earlier int
	}{
		{"first attempt", 0},
		{"after one abandoned attempt", 1},
		{"after three abandoned attempts", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			lns := []*Listener{listen(t, cfg), listen(t, cfg)}
			addrs := []string{lns[0].Addr().String(), lns[1].Addr().String()}
			for range tc.earlier {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				m, err := Connect(ctx, lns[0], cfg, 7, 0, addrs, []int{1})
				cancel()
				if err == nil {
					m.Close()
					t.Fatal("rank 0 connected to rank 1, which was not connecting")
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Connect: %v, want its deadline", err)
				}
			}
			// Rank 1 connects first this time: it must not take up an
			// earlier attempt's connection, but wait for this one's.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			meshes := make([]*Mesh, 2)
			errs := make([]error, 2)
			done := make(chan struct{})
			go func() {
				defer close(done)
				meshes[1], errs[1] = Connect(ctx, lns[1], cfg, 7, 1, addrs, []int{0})
			}()
			waitForStack(t, "transport.(*Listener).Accept", 5*time.Second)
			meshes[0], errs[0] = Connect(ctx, lns[0], cfg, 7, 0, addrs, []int{1})
			<-done
			checkMeshes(t, meshes, errs)
			exchangeRing(t, meshes, 1)
		})
	}
}

// TestConnectPeerLeavesIncompleteAttempt: rank 1 gives up its attempt
// after its link with rank 0 is up but before rank 2 comes, and starts
// another. Rank 0 links again to rank 1's new attempt instead of keeping
// the dead link (or failing, which would fail its other peers in turn),
// and the ring of 3 forms and exchanges data.
func TestConnectPeerLeavesIncompleteAttempt(t *testing.T) {
	cfg := testConfig()
	logs := newLogBuffer()
	cfgs := []Config{cfg, cfg, cfg}
	cfgs[0].Logger = logs.logger() // rank 0's lines tell when it links again
	lns := []*Listener{listen(t, cfgs[0]), listen(t, cfg), listen(t, cfg)}
	addrs := make([]string, 3)
	for i, ln := range lns {
		addrs[i] = ln.Addr().String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	meshes := make([]*Mesh, 3)
	errs := make([]error, 3)
	done := make(chan struct{}, 3)
	connect := func(ctx context.Context, r int) {
		meshes[r], errs[r] = Connect(ctx, lns[r], cfgs[r], 9, r, addrs, ringLinks(r, 3))
		done <- struct{}{}
	}
	go connect(ctx, 0)
	first, abandon := context.WithCancel(ctx)
	go connect(first, 1)
	// Both ends of link 0-1 are up and wait for the rest of their meshes.
	waitForStacks(t, "transport.(*upCount).wait", 2, 5*time.Second)
	abandon()
	<-done
	if errs[1] == nil {
		t.Fatal("rank 1's abandoned attempt succeeded")
	}
	logs.waitFor(t, 5*time.Second, "linking again", "rank=1")
	go connect(ctx, 1)
	go connect(ctx, 2)
	for range 3 {
		<-done
	}
	checkMeshes(t, meshes, errs)
	exchangeRing(t, meshes, 1)
}

// TestAbortOnHangup: a rank waits on one peer that is still there while
// another peer gives the mesh up; with AbortOnHangup its Exchange fails at
// once (not at its deadline), and after stop a hang-up no longer aborts.
func TestAbortOnHangup(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stopped bool // stop the watch before the hang-up
	}{
		{"watched", false},
		{"stopped", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			meshes := newRing(t, 3, testConfig())
			stop, err := meshes[0].AbortOnHangup()
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			if tc.stopped {
				stop()
			}
			wait := 10 * time.Second
			if tc.stopped {
				wait = 300 * time.Millisecond // it must run into this deadline
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			done := make(chan error, 1)
			go func() { // from rank 2, which stays silent
				done <- meshes[0].Exchange(ctx, -1, nil, 2, make([]byte, 8), 1, 0)
			}()
			waitForStack(t, "transport.(*Mesh).Exchange", 5*time.Second)
			meshes[1].Close() // rank 1 gives the ring up
			start := time.Now()
			err = <-done
			took := time.Since(start)
			switch {
			case tc.stopped && !errors.Is(err, context.DeadlineExceeded):
				t.Fatalf("Exchange: %v, want its deadline (the watch was stopped)", err)
			case !tc.stopped && (err == nil || errors.Is(err, context.DeadlineExceeded)):
				// (ErrAborted, or the EOF of its own shut-down socket,
				// depending on whether the Exchange was asleep or spinning)
				t.Fatalf("Exchange: %v, want it aborted", err)
			case !tc.stopped && took > time.Second:
				t.Fatalf("Exchange failed %v after the hang-up, want at once", took)
			}
		})
	}
}

// checkMeshes closes the meshes at the test's end and fails it on the
// first rank whose Connect failed.
func checkMeshes(t *testing.T, meshes []*Mesh, errs []error) {
	t.Helper()
	for r, m := range meshes {
		if m != nil {
			t.Cleanup(func() { m.Close() })
		}
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
	}
}
