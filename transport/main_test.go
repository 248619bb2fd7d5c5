package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logBuffer is an io.Writer for a slog handler that tests can inspect, and
// wait on, while listener goroutines write to it.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{})} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return n, err
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitFor waits (at most timeout) until one logged line contains all of subs,
// and returns that line. It wakes on every write instead of polling.
func (b *logBuffer) waitFor(t testing.TB, timeout time.Duration, subs ...string) string {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		b.mu.Lock()
		text, changed := b.buf.String(), b.changed
		b.mu.Unlock()
		for line := range strings.Lines(text) {
			if containsAll(line, subs...) {
				return line
			}
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Errorf("no log line containing %q within %v; the log:\n%s", subs, timeout, b.String())
			return ""
		}
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

var discardLogger = slog.New(slog.DiscardHandler)

// testConfig is the cluster configuration every test listener and mesh uses.
func testConfig() Config {
	return Config{Cluster: "c", RunDigest: "d", Secret: []byte("s"), Logger: discardLogger}
}

// listen opens a Listener on 127.0.0.1:0 that the test closes at its end.
func listen(t testing.TB, cfg Config) *Listener {
	t.Helper()
	ln, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() {
		if err := ln.Close(); err != nil {
			t.Errorf("Listener.Close: %v", err)
		}
	})
	return ln
}

// ringLinks is the set of ranks that rank exchanges data with in a ring of n.
func ringLinks(rank, n int) []int {
	switch n {
	case 1:
		return nil
	case 2:
		return []int{1 - rank}
	}
	return []int{(rank + 1) % n, (rank + n - 1) % n}
}

// connectRing connects one Mesh per listener, all in ring epoch epoch, and
// registers their Close with t. It returns an error instead of failing t so
// that it can run on a goroutine of its own.
func connectRing(t testing.TB, ctx context.Context, lns []*Listener, cfg Config, epoch uint32) ([]*Mesh, error) {
	n := len(lns)
	addrs := make([]string, n)
	for i, ln := range lns {
		addrs[i] = ln.Addr().String()
	}
	meshes := make([]*Mesh, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Go(func() { meshes[r], errs[r] = Connect(ctx, lns[r], cfg, epoch, r, addrs, ringLinks(r, n)) })
	}
	wg.Wait()
	for _, m := range meshes {
		if m != nil {
			t.Cleanup(func() { _ = m.Close() })
		}
	}
	return meshes, errors.Join(errs...)
}

// newRing starts n listeners and connects a ring of n meshes over them.
func newRing(t testing.TB, n int, cfg Config) []*Mesh {
	t.Helper()
	lns := make([]*Listener, n)
	for i := range lns {
		lns[i] = listen(t, cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	meshes, err := connectRing(t, ctx, lns, cfg, 1)
	if err != nil {
		t.Fatalf("connect a ring of %d: %v", n, err)
	}
	return meshes
}

// fill writes a pattern that differs between ranks and steps into b.
func fill(b []byte, rank int, seq uint64) {
	for i := range b {
		b[i] = byte(i*7 + rank*31 + int(seq)*13 + i>>8)
	}
}

// runExchanges runs one Exchange per rank concurrently, rank r sending
// sends[r] to tos[r] and receiving recvs[r] from froms[r], and joins the errors.
func runExchanges(ctx context.Context, meshes []*Mesh, tos, froms []int, sends, recvs [][]byte, seq uint64, chunk uint32) error {
	errs := make([]error, len(meshes))
	var wg sync.WaitGroup
	for r, m := range meshes {
		wg.Go(func() { errs[r] = m.Exchange(ctx, tos[r], sends[r], froms[r], recvs[r], seq, chunk) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// readUntilClosed reads and discards from nc until the other side closes it
// (EOF or a reset), for at most bound. It fails t when nc stays open.
func readUntilClosed(t testing.TB, nc net.Conn, bound time.Duration) {
	t.Helper()
	if err := nc.SetReadDeadline(time.Now().Add(bound)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, nc)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the server did not close the connection within %v: %v", bound, err)
	}
}

// waitForStack waits (at most timeout) until some goroutine's stack
// contains frame, e.g. to know that a goroutine is inside a blocking call.
func waitForStack(t testing.TB, frame string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if bytes.Contains(buf[:n], []byte(frame)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no goroutine entered %s within %v", frame, timeout)
		}
		time.Sleep(time.Millisecond) // poll: a stack dump stops the world

	}
}

// within runs f and fails t when it takes longer than bound.
func within(t testing.TB, bound time.Duration, what string, f func()) time.Duration {
	t.Helper()
	start := time.Now()
	f()
	d := time.Since(start)
	if d > bound {
		t.Errorf("%s took %v, want at most %v", what, d, bound)
	}
	return d
}

// mustMention fails t unless err's text contains every one of subs.
func mustMention(t testing.TB, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one mentioning %q", subs)
	}
	if !containsAll(err.Error(), subs...) {
		t.Errorf("error %q does not mention %q", err, subs)
	}
}

func rankName(r int) string { return fmt.Sprintf("rank %d", r) }
