package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmlrun/dmlrun/launch"
	"github.com/dmlrun/dmlrun/timeline"
)

// An mlp of 9.5k parameters: its gradient (76 KiB) is above the 64 KiB
// that recursive doubling takes, so each step is a ring allreduce with a
// reduce-scatter and an allgather.
const timelineJob = `name: timeline
seed: 4
data: {format: synthetic, normalize: true, synthetic: {task: binary, samples: 2001, features: 20, noise: 0.4}}
model: {kind: mlp, hidden: [256, 16]}
optimizer: {kind: adam, lr: 0.01}
training: {batch_size: 32, steps: %d, eval_every: %d}
cluster: {rejoin_timeout: 30s}
`

type traceEvent struct {
	Ph   string         `json:"ph"`
	Pid  int            `json:"pid"`
	Tid  int            `json:"tid"`
	Name string         `json:"name"`
	Ts   float64        `json:"ts"`
	Dur  float64        `json:"dur"`
	Args map[string]any `json:"args"`
}

// rankTrace is one process of a merged trace.
type rankTrace struct {
	name   string               // process_name
	lanes  map[int]string       // thread names by tid
	events map[int][]traceEvent // by tid, in file order
	count  map[string]int       // events by name
}

// readTimeline parses a merged trace, checks what every process of it must
// satisfy, and returns the processes by pid: it is one JSON object; each
// process is named and has the four named lanes; on each lane the complete
// events come in order of start and nest (two spans are disjoint, or one
// holds the other: no partial overlap).
func readTimeline(t *testing.T, path string) map[int]*rankTrace {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		TraceEvents     []traceEvent `json:"traceEvents"`
		DisplayTimeUnit string       `json:"displayTimeUnit"`
	}
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatalf("%s is not valid JSON: %v", path, err)
	}
	if tr.DisplayTimeUnit != "ms" {
		t.Fatalf("displayTimeUnit %q", tr.DisplayTimeUnit)
	}
	ranks := map[int]*rankTrace{}
	for _, e := range tr.TraceEvents {
		r := ranks[e.Pid]
		if r == nil {
			r = &rankTrace{lanes: map[int]string{}, events: map[int][]traceEvent{}, count: map[string]int{}}
			ranks[e.Pid] = r
		}
		r.count[e.Name]++
		switch {
		case e.Ph == "M" && e.Name == "process_name":
			r.name, _ = e.Args["name"].(string)
		case e.Ph == "M" && e.Name == "thread_name":
			r.lanes[e.Tid], _ = e.Args["name"].(string)
		case e.Ph == "X":
			r.events[e.Tid] = append(r.events[e.Tid], e)
		}
	}
	for pid, r := range ranks {
		if r.name == "" {
			t.Errorf("process %d has no name", pid)
		}
		for tid, want := range map[int]string{1: "compute", 2: "allreduce", 3: "data loading", 4: "recovery"} {
			if r.lanes[tid] != want {
				t.Errorf("process %d: lane %d is %q, want %q", pid, tid, r.lanes[tid], want)
			}
		}
		for tid, evs := range r.events {
			var open []traceEvent // the spans holding the current one
			for i, e := range evs {
				if e.Dur < 0 {
					t.Fatalf("process %d lane %d: negative duration: %+v", pid, tid, e)
				}
				if i > 0 && e.Ts < evs[i-1].Ts {
					t.Fatalf("process %d lane %d: %+v starts before the event before it, %+v", pid, tid, e, evs[i-1])
				}
				for len(open) > 0 && e.Ts >= open[len(open)-1].Ts+open[len(open)-1].Dur {
					open = open[:len(open)-1]
				}
				if len(open) > 0 && e.Ts+e.Dur > open[len(open)-1].Ts+open[len(open)-1].Dur+0.0015 {
					t.Fatalf("process %d lane %d: %+v overlaps %+v without nesting in it", pid, tid, e, open[len(open)-1])
				}
				open = append(open, e)
			}
		}
	}
	return ranks
}

// counts is r's events by name (nil for no process), for messages.
func counts(r *rankTrace) map[string]int {
	if r == nil {
		return nil
	}
	return r.count
}

// lastTs is the end of the latest complete event of r on any lane.
func (r *rankTrace) lastTs() float64 {
	end := 0.0
	for _, evs := range r.events {
		for _, e := range evs {
			end = max(end, e.Ts+e.Dur)
		}
	}
	return end
}

// nested reports whether some span named inner lies inside a span named
// outer on the same lane.
func (r *rankTrace) nested(tid int, outer, inner string) bool {
	for _, o := range r.events[tid] {
		for _, i := range r.events[tid] {
			if o.Name == outer && i.Name == inner && i.Ts >= o.Ts && i.Ts+i.Dur <= o.Ts+o.Dur+0.0015 {
				return true
			}
		}
	}
	return false
}

// TestTimelineThreeNodes: the timeline of `dmlrun -np 3` is one valid
// trace holding every rank, named by rank, host and slot, with every step's
// compute and allreduce (its reduce-scatter and allgather inside), the data
// load, and clock offsets near 0 (one host); the parts are gone.
func TestTimelineThreeNodes(t *testing.T) {
	dir := t.TempDir()
	const steps = 60
	cfg := jobConfig(t, dir, fmt.Sprintf(timelineJob, steps, 20))
	file := filepath.Join(dir, "trace.json")
	out, errOut, err := dmlrun(t, 2*time.Minute, "-np", "3", "-timeline", file, cfg)
	if err != nil || !strings.Contains(out, "all 3 nodes hold identical θ") {
		t.Fatalf("%v\n%s\n%s", err, out, errOut)
	}
	if !strings.Contains(errOut, "timeline written to "+file) {
		t.Errorf("the launcher did not say where the timeline is:\n%s", errOut)
	}
	ranks := readTimeline(t, file)
	if len(ranks) != 3 {
		t.Fatalf("%d processes in the trace, want 3", len(ranks))
	}
	for pid := range 3 {
		r := ranks[pid]
		if r == nil {
			t.Fatalf("no process %d", pid)
		}
		if want := fmt.Sprintf("rank %d (host 127.0.0.1, slot %d)", pid, pid); r.name != want {
			t.Errorf("process %d is named %q, want %q", pid, r.name, want)
		}
		if r.count["compute"] != steps || r.count["load data"] != 1 || r.count["align clocks"] != 1 {
			t.Errorf("process %d: %d compute, %d load data, %d align clocks events; want %d, 1, 1", pid,
				r.count["compute"], r.count["load data"], r.count["align clocks"], steps)
		}
		// One allreduce a step and one per evaluation (3), and the two
		// phases of each.
		if r.count["allreduce"] < steps || r.count["reduce-scatter"] < steps || r.count["allgather"] < steps {
			t.Errorf("process %d: %d allreduce, %d reduce-scatter, %d allgather events for %d steps", pid,
				r.count["allreduce"], r.count["reduce-scatter"], r.count["allgather"], steps)
		}
		if !r.nested(2, "allreduce", "reduce-scatter") || !r.nested(2, "allreduce", "allgather") {
			t.Errorf("process %d: the phases are not inside the allreduce", pid)
		}
		for _, e := range r.events[4] {
			if off, _ := e.Args["offset us"].(float64); e.Name == "align clocks" && (off > 20_000 || off < -20_000) {
				t.Errorf("process %d: clock offset %v us on one host", pid, off)
			}
		}
	}
	if _, err := os.Stat(file + ".parts"); err == nil {
		t.Errorf("the parts directory was left behind")
	}
}

// nodeOfRank maps the launch index (-timeline-pid) of each child of the
// launcher to its process id.
func nodeOfRank(t *testing.T, launcher int) map[int]int {
	t.Helper()
	out := map[int]int{}
	for _, pid := range children(launcher) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(string(b), "\x00")
		if i := slices.Index(args, "-timeline-pid"); i >= 0 && i+1 < len(args) {
			var r int
			fmt.Sscan(args[i+1], &r)
			out[r] = pid
		}
	}
	return out
}

// TestTimelineNodeKilled: a node killed with SIGKILL mid-run leaves its
// events up to its death in the trace; the survivors' hold the failure, the
// re-formed ring, the re-shard and the whole recovery, and go on.
func TestTimelineNodeKilled(t *testing.T) {
	dir := t.TempDir()
	const steps = 1500
	cfg := jobConfig(t, dir, fmt.Sprintf(timelineJob, steps, 100))
	file := filepath.Join(dir, "trace.json")
	cmd := exec.Command(dmlrunBin, "-np", "3", "-v", "-timeline", file, cfg) // -v: the node lines the test waits for
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitForLog(t, &stderr, "step=300 ", time.Minute)
	nodes := nodeOfRank(t, cmd.Process.Pid)
	if len(nodes) != 3 {
		t.Fatalf("nodes %v", nodes)
	}
	syscall.Kill(nodes[1], syscall.SIGKILL)
	if err := waitExit(t, cmd, 2*time.Minute, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "all 2 nodes hold identical θ") {
		t.Fatalf("stdout %q\n%s", stdout.String(), stderr.String())
	}
	ranks := readTimeline(t, file)
	dead := ranks[1]
	// It was killed after step 300; its part holds what it flushed, every
	// 10 ms (a few steps here).
	if dead == nil || dead.count["compute"] < 250 || dead.count["compute"] >= steps {
		t.Fatalf("the killed node's events: %v", counts(dead))
	}
	for _, pid := range []int{0, 2} {
		// Every step, but one if this survivor was behind when the ring
		// failed: it received that step's θ instead of computing it.
		r := ranks[pid]
		if r == nil || r.count["compute"] < steps-1 || r.count["compute"] > steps {
			t.Fatalf("survivor %d: %v", pid, counts(r))
		}
		for _, name := range []string{"ring failed", "re-form ring", "re-shard", "recovery", "align clocks"} {
			if r.count[name] < 1 {
				t.Errorf("survivor %d has no %q event: %v", pid, name, r.count)
			}
		}
		if r.count["recovery (unfinished)"] != 0 {
			t.Errorf("survivor %d: a recovery did not finish", pid)
		}
		if !r.nested(4, "recovery", "re-form ring") {
			t.Errorf("survivor %d: re-forming the ring is not inside the recovery", pid)
		}
		var rec traceEvent
		for _, e := range r.events[4] {
			if e.Name == "recovery" {
				rec = e
			}
		}
		// The killed node's part ends at its death: before the survivors
		// saw the ring fail, by at most a flush interval (10 ms) and a step
		// (and the scheduling of 3 nodes with -race on 2 cores).
		end := dead.lastTs()
		t.Logf("survivor %d: recovery from %.0f us for %.0f us; the killed node's last event ended at %.0f us", pid, rec.Ts, rec.Dur, end)
		if end > rec.Ts+5_000 || end < rec.Ts-500_000 {
			t.Errorf("the killed node's last event ends at %.0f us, the survivors' recovery starts at %.0f", end, rec.Ts)
		}
	}
}

// TestTimelineRestartedNode: with -max-restarts, the node started again in
// a killed one's place writes a part of its own beside the first (same
// process, later events) and joins the ring, which the others record.
func TestTimelineRestartedNode(t *testing.T) {
	dir := t.TempDir()
	const steps = 1500
	cfg := jobConfig(t, dir, fmt.Sprintf(timelineJob, steps, 100))
	file := filepath.Join(dir, "trace.json")
	cmd := exec.Command(dmlrunBin, "-np", "3", "-v", "-max-restarts", "1", "-timeline", file, cfg)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitForLog(t, &stderr, "step=300 ", time.Minute)
	syscall.Kill(nodeOfRank(t, cmd.Process.Pid)[1], syscall.SIGKILL)
	if err := waitExit(t, cmd, 2*time.Minute, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "all 3 nodes hold identical θ") || !strings.Contains(stderr.String(), "joined the ring") {
		t.Fatalf("stdout %q\n%s", stdout.String(), stderr.String())
	}
	ranks := readTimeline(t, file)
	r := ranks[1]
	if r == nil || r.count["process_name"] != 2 || r.count["load data"] != 2 {
		t.Fatalf("process 1 (killed, then restarted) should have two parts' names and loads: %v", counts(r))
	}
	// The first node's steps, then the restarted one's: fewer than the run,
	// more than the first had done.
	if c := r.count["compute"]; c <= 300 || c >= steps+300 {
		t.Errorf("process 1: %d compute events", c)
	}
	// The survivors took it in: in their recovery, if it was back by then,
	// or by growing the ring afterwards. Either way their last re-formed
	// ring has 3 nodes.
	for _, pid := range []int{0, 2} {
		var last traceEvent
		if r := ranks[pid]; r != nil {
			for _, e := range r.events[4] {
				if e.Name == "re-form ring" {
					last = e
				}
			}
		}
		if last.Args["size"] != 3.0 {
			t.Errorf("survivor %d: last re-formed ring %v, want 3 nodes: %v", pid, last, counts(ranks[pid]))
		}
	}
}

// TestTimelineJobFails: a job that fails (a diverging model: every node
// stops at the same step) still leaves a valid trace, each node's ending
// with the error it exited with.
func TestTimelineJobFails(t *testing.T) {
	dir := t.TempDir()
	cfg := jobConfig(t, dir, `name: div
data: {format: synthetic, synthetic: {task: regression, samples: 2000, features: 5, noise: 0.1}}
model: {kind: linear}
optimizer: {kind: sgd, lr: 100}
training: {batch_size: 64, steps: 5000}
`)
	file := filepath.Join(dir, "trace.json")
	_, errOut, err := dmlrun(t, time.Minute, "-np", "3", "-timeline", file, cfg)
	if err == nil || !strings.Contains(errOut, "the model diverged") {
		t.Fatalf("%v\n%s", err, errOut)
	}
	ranks := readTimeline(t, file)
	for pid := range 3 {
		r := ranks[pid]
		if r == nil || r.count["compute"] < 1 || r.count["exit"] != 1 {
			t.Errorf("process %d: %v", pid, counts(r))
		}
	}
}

// TestTimelineInterrupted: SIGINT or SIGTERM to the launcher mid-run still
// leaves a valid trace with every node's events.
func TestTimelineInterrupted(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			cfg := jobConfig(t, dir, fmt.Sprintf(timelineJob, 100_000_000, 100))
			file := filepath.Join(dir, "trace.json")
			cmd := exec.Command(dmlrunBin, "-np", "3", "-v", "-timeline", file, cfg) // -v: the node lines the test waits for
			var stderr syncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			waitForLog(t, &stderr, "step=300 ", time.Minute)
			cmd.Process.Signal(sig)
			if err := waitExit(t, cmd, time.Minute, &stderr); err == nil {
				t.Fatal("exit 0 after an interrupt")
			}
			ranks := readTimeline(t, file)
			for pid := range 3 {
				if r := ranks[pid]; r == nil || r.count["compute"] < 250 {
					t.Errorf("process %d: %v", pid, counts(r))
				}
			}
		})
	}
}

// TestTimelineFlags: the launcher passes each node its part, launch index
// and cap; bad values are refused.
func TestTimelineFlags(t *testing.T) {
	f, err := parseLaunch([]string{"-np", "2", "-timeline", "t.json", "-timeline-steps", "50"}, &bytes.Buffer{})
	if err != nil || f.timeline != "t.json" || f.timelineSteps != 50 {
		t.Fatalf("%+v, %v", f, err)
	}
	if _, err := parseLaunch([]string{"-np", "2", "-timeline-steps", "0"}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "-timeline-steps 0") {
		t.Fatalf("got %v", err)
	}
	n, err := parseNode([]string{"-timeline-part", "p.json", "-timeline-pid", "3", "-timeline-steps", "7"}, &bytes.Buffer{})
	if err != nil || n.timeline.Part != "p.json" || n.timeline.PID != 3 || n.timeline.Steps != 7 {
		t.Fatalf("%+v, %v", n, err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "t.json.parts"), 0o755)
	stale := filepath.Join(dir, "t.json.parts", "rank-9.json")
	os.WriteFile(stale, []byte("old"), 0o644)
	j, err := newJobTimeline(filepath.Join(dir, "t.json"), 50, launch.Slots([]launch.Host{{Name: "127.0.0.1", Slots: 2}}), launch.Remote{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("a part of an earlier run was kept")
	}
	want := []string{"-timeline-part", filepath.Join(dir, "t.json.parts", "rank-1.json"), "-timeline-pid", "1", "-timeline-steps", "50"}
	if got := j.nodeArgs(1); !slices.Equal(got, want) {
		t.Errorf("node args %v, want %v", got, want)
	}
	var none *jobTimeline
	if none.nodeArgs(0) != nil || none.finish(context.Background(), &bytes.Buffer{}) != nil {
		t.Error("no timeline still did something")
	}
}

// TestTimelineFetchesRemoteParts: a part that a node on another host wrote
// where the launcher cannot see it (no shared file system) is fetched with
// the job's ssh command; a host whose part cannot be fetched is reported.
func TestTimelineFetchesRemoteParts(t *testing.T) {
	dir := t.TempDir()
	remote := filepath.Join(dir, "remote.json") // what "cat" on the remote host prints
	w, err := timeline.Create(remote)
	if err != nil {
		t.Fatal(err)
	}
	w.SetPID(1)
	w.Complete(1, "compute", 0, 1000).Done()
	w.Close()
	// A stand-in for ssh: it checks that it was asked to cat the part, and
	// prints the remote file for host b, fails for host c.
	fake := filepath.Join(dir, "fake-ssh")
	script := fmt.Sprintf("#!/bin/sh\ncase \"$*\" in *' b cat '*'rank-1.json'*) exec cat %s;; esac\necho no route to host >&2\nexit 255\n", remote)
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	slots := launch.Slots([]launch.Host{{Name: "a", Slots: 1}, {Name: "b", Slots: 1}, {Name: "c", Slots: 1}})
	j, err := newJobTimeline(filepath.Join(dir, "trace.json"), 10, slots, launch.Remote{SSH: []string{fake}})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(j.part(0), []byte(`{"traceEvents":[`+"\n"+`{"ph":"X","pid":0,"tid":1,"name":"compute","ts":0,"dur":1}`+"\n"+`],"displayTimeUnit":"ms"}`), 0o644)
	var log bytes.Buffer
	if err := j.finish(context.Background(), &log); err != nil {
		t.Fatal(err)
	}
	ranks := readTimelineLoose(t, filepath.Join(dir, "trace.json"))
	if !slices.Equal(ranks, []int{0, 1}) {
		t.Errorf("processes %v in the trace, want 0 and 1 (the fetched part)\n%s", ranks, log.String())
	}
	if !strings.Contains(log.String(), "no part from node 2@c") || !strings.Contains(log.String(), "no route to host") {
		t.Errorf("the unreachable host was not reported:\n%s", log.String())
	}
}

// readTimelineLoose returns the pids with events in a trace, without the
// checks of readTimeline (hand-made parts have no names or lanes).
func readTimelineLoose(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tr struct{ TraceEvents []traceEvent }
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range tr.TraceEvents {
		pids = append(pids, e.Pid)
	}
	return slices.Compact(slices.Sorted(slices.Values(pids)))
}
