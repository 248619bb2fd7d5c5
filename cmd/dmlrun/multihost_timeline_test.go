package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmlrun/dmlrun/internal/testbed"
)

// TestMultihostTimeline: `dmlrun -hosts -timeline` over ssh to 3 hosts (one
// with 2 slots) gives one trace with a process per rank, named by its host
// and slot, on one clock (the namespaces share the machine's clock, so the
// measured offsets are small).
func TestMultihostTimeline(t *testing.T) {
	b := testbed.New(t, 3, testbed.Options{SSH: true})
	dir := t.TempDir()
	cfg := jobConfig(t, dir, multihostJob)
	file := filepath.Join(dir, "trace.json")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := b.Command(ctx, 0, dmlrunBin, "-hosts", b.HostsFile([]int{1, 2, 1}), "-ssh", strings.Join(b.SSH, " "), "-timeline", file, cfg)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || !strings.Contains(stdout.String(), "all 4 nodes hold identical θ") {
		t.Fatalf("dmlrun -hosts -timeline: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	ranks := readTimeline(t, file)
	slots := []struct{ host, slot int }{{0, 0}, {1, 0}, {1, 1}, {2, 0}}
	for pid, s := range slots {
		r := ranks[pid]
		if r == nil {
			t.Fatalf("no process %d in the trace", pid)
		}
		if want := fmt.Sprintf("rank %d (host %s, slot %d)", pid, b.Hosts[s.host].IP, s.slot); r.name != want {
			t.Errorf("process %d is %q, want %q", pid, r.name, want)
		}
		if r.count["compute"] != 120 {
			t.Errorf("process %d: %d compute events, want 120", pid, r.count["compute"])
		}
		for _, e := range r.events[4] {
			if off, _ := e.Args["offset us"].(float64); e.Name == "align clocks" && (off > 20_000 || off < -20_000) {
				t.Errorf("process %d: clock offset %v us", pid, off)
			}
		}
	}
}
