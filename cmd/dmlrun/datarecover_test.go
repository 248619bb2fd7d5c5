package main

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmlrun/dmlrun/data"
)

// writeBinaryCSV writes rows rows of features numeric features and a 0/1
// label y drawn from a logistic model, and returns the file's path.
func writeBinaryCSV(t *testing.T, dir string, rows, features int) string {
	t.Helper()
	path := filepath.Join(dir, "train.csv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for j := range features {
		fmt.Fprintf(w, "f%d,", j)
	}
	w.WriteString("y\n")
	rng := rand.New(rand.NewPCG(42, 3))
	x := make([]float64, features)
	var line []byte
	for range rows {
		z := 0.3
		line = line[:0]
		for j := range x {
			x[j] = rng.NormFloat64()*float64(j+1) + float64(j)
			z += (0.5 - float64(j%3)*0.4) * (x[j] - float64(j)) / float64(j+1)
			line = strconv.AppendFloat(line, x[j], 'g', 6, 64)
			line = append(line, ',')
		}
		y := 0
		if rng.Float64() < 1/(1+math.Exp(-z)) {
			y = 1
		}
		line = strconv.AppendInt(line, int64(y), 10)
		line = append(line, '\n')
		w.Write(line)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// nodeFlag returns the value of flag name on a node process's command line.
func nodeFlag(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(string(b), "\x00")
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	t.Fatalf("node %d has no %s flag: %q", pid, name, args)
	return ""
}

// slotOf returns the -slot argument of a node process (with -np, all slots
// are on one host, so the slot is the node's rank in the first ring).
func slotOf(t *testing.T, pid int) int {
	t.Helper()
	s, err := strconv.Atoi(nodeFlag(t, pid, "-slot"))
	if err != nil {
		t.Fatalf("node %d: -slot: %v", pid, err)
	}
	return s
}

// newShardRows returns the rows in shards of now that were not in was.
func newShardRows(s data.Sharding, was, now data.Spread) int {
	n := 0
	for _, v := range now.Shards() {
		if !was.OwnsShard(v) {
			lo, hi := s.ShardRows(v)
			n += hi - lo
		}
	}
	return n
}

// localRing names the members of a -np ring as the node does when it
// assigns shards (host/slot), without the slots in gone.
func localRing(n int, gone ...int) []string {
	var names []string
	for i := range n {
		if !slices.Contains(gone, i) {
			names = append(names, fmt.Sprintf("127.0.0.1/%d", i))
		}
	}
	return names
}

var (
	logLabel   = regexp.MustCompile(`^\[(\d+)\] `)
	logRank    = regexp.MustCompile(` rank=(\d+)`)
	logRows    = regexp.MustCompile(` rows=(\d+)`)
	logOwnRows = regexp.MustCompile(`"own rows"=(\d+)`)
	logRead    = regexp.MustCompile(`"rows read"=(\d+)`)
	logResume  = regexp.MustCompile(`"resume at step"=(\d+)`)
	logPause   = regexp.MustCompile(` pause=(\S+)`)
)

func logInt(t *testing.T, re *regexp.Regexp, line string) int {
	t.Helper()
	m := re.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no %s in %q", re, line)
	}
	v, err := strconv.Atoi(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRecoveryReadsOnlyMovedShards: a CSV job on 4 nodes loses the node of
// rank 1 mid-run. Each survivor keeps the shards it still owns and parses
// only the shards newly assigned to it (exactly, by row count), far less
// than the data set, and the run still ends with θ equal to the
// uninterrupted run's.
func TestRecoveryReadsOnlyMovedShards(t *testing.T) {
	dir := t.TempDir()
	const rows, features = 40000, 8
	const steps, every, killAt = 10000, 500, 1000
	const nodes, victimRank = 4, 1
	csv := writeBinaryCSV(t, dir, rows, features)
	body := fmt.Sprintf(`name: datarecover
seed: 11
data: {train: %s, label: y, normalize: true}
model: {kind: logistic, l2: 0.001}
optimizer: {kind: adam, lr: 0.01}
training: {batch_size: 64, steps: %d, eval_every: %d}
cluster: {rejoin_timeout: 30s}
`, csv, steps, every)
	start := time.Now()
	ref, _ := trainNP(t, 1, jobConfig(t, dir, body))
	refTook := time.Since(start)

	cfg := jobConfig(t, dir, body)
	start = time.Now()
	cmd, stdout, stderr := startJob(t, nodes, cfg)
	waitForLog(t, stderr, fmt.Sprintf("step=%d ", killAt), time.Minute) // an evaluation: the first ring trains
	pids := children(cmd.Process.Pid)
	if len(pids) != nodes {
		t.Fatalf("%d nodes, want %d", len(pids), nodes)
	}
	victim := -1
	for _, pid := range pids {
		if slotOf(t, pid) == victimRank {
			victim = pid
		}
	}
	if victim < 0 {
		t.Fatalf("no node of slot %d among %v", victimRank, pids)
	}
	syscall.Kill(victim, syscall.SIGKILL)
	if err := waitExit(t, cmd, 2*time.Minute, stderr); err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	jobTook := time.Since(start)
	log := stderr.String()
	if !strings.Contains(stdout.String(), fmt.Sprintf("all %d nodes hold identical θ", nodes-1)) || !strings.Contains(log, "ring recovered") {
		t.Fatalf("stdout %q\n%s", stdout.String(), log)
	}
	i := strings.Index(log, `msg="ring recovered"`)
	rec := log[i:]
	rec = rec[:strings.IndexByte(rec+"\n", '\n')]
	resumeAt := logInt(t, logResume, rec)
	if resumeAt < killAt || resumeAt >= steps {
		t.Fatalf("the ring recovered at step %d; the node was killed after step %d of %d: %s", resumeAt, killAt, steps, rec)
	}
	pause := "?"
	if pm := logPause.FindStringSubmatch(rec); pm != nil {
		pause = pm[1]
	}
	m := readModel(t, cfg)
	if m.Steps != steps {
		t.Fatalf("%d steps done, want %d", m.Steps, steps)
	}
	if d := relDiff(m.Theta, ref.Theta); d > 1e-9 {
		t.Fatalf("θ differs from the uninterrupted run by %g", d)
	}

	// The first ring: every node parsed its own part, and no more.
	s := data.NewSharding(rows, 0)
	before, after := s.Spread(localRing(nodes)), s.Spread(localRing(nodes, victimRank))
	first := map[int]string{}     // old rank -> its "training" line
	recovered := map[int]string{} // old rank -> its first "rows read for the new ring" line
	for _, line := range strings.Split(log, "\n") {
		lm := logLabel.FindStringSubmatch(line)
		if lm == nil {
			continue
		}
		old, _ := strconv.Atoi(lm[1])
		switch {
		case strings.Contains(line, "msg=training "):
			if _, ok := first[old]; !ok {
				first[old] = line
			}
		case strings.Contains(line, `msg="rows read for the new ring"`):
			if _, ok := recovered[old]; !ok { // a later line is a later ring change (or a retry: 0 rows)
				recovered[old] = line
			}
		}
	}
	for r := range nodes {
		line, ok := first[r]
		if !ok {
			t.Fatalf("no training line from rank %d:\n%s", r, log)
		}
		if got, want := logInt(t, logRead, line), before[r].Len(); got != want {
			t.Errorf("first ring, rank %d: %d rows read, want its part's %d", r, got, want)
		}
	}
	if line, ok := recovered[victimRank]; ok {
		t.Fatalf("the killed node logged a recovery: %s", line)
	}

	// The recovery: each survivor read exactly the rows of the shards it
	// did not hold before.
	total, victimRows := 0, before[victimRank].Len()
	for old := range nodes {
		if old == victimRank {
			continue
		}
		line, ok := recovered[old]
		if !ok {
			t.Fatalf("survivor of rank %d logged no rows read for the new ring:\n%s", old, log)
		}
		want := old
		if old > victimRank {
			want--
		}
		rank := logInt(t, logRank, line)
		if rank != want {
			t.Fatalf("survivor of rank %d has rank %d in the new ring, want %d: %s", old, rank, want, line)
		}
		was, now := before[old], after[rank]
		read, own := logInt(t, logRows, line), logInt(t, logOwnRows, line)
		wantRead := newShardRows(s, was, now)
		t.Logf("rank %d -> %d: %d shards -> %d: read %d rows (want %d), holds %d (want %d)",
			old, rank, len(was.Shards()), len(now.Shards()), read, wantRead, own, now.Len())
		if read != wantRead {
			t.Errorf("survivor %d -> %d read %d rows for the new ring, want %d (the rows of the shards it did not hold)", old, rank, read, wantRead)
		}
		if own != now.Len() {
			t.Errorf("survivor %d -> %d holds %d rows, want its part's %d", old, rank, own, now.Len())
		}
		total += read
	}
	t.Logf("N=%d, lost node's rows %d, rows read by the survivors %d (%.1f%% of N); recovered at step %d, pause %s; reference run %v, 4-node run with the kill %v",
		rows, victimRows, total, 100*float64(total)/rows, resumeAt, pause, refTook.Round(time.Millisecond), jobTook.Round(time.Millisecond))
	if total >= rows/2 {
		t.Errorf("the survivors read %d of %d rows: recovery re-read the data set", total, rows)
	}
	if total > victimRows+victimRows/5 {
		t.Errorf("the survivors read %d rows, far more than the %d the lost node held", total, victimRows)
	}
	if total < victimRows {
		t.Errorf("the survivors read %d rows, fewer than the %d the lost node held", total, victimRows)
	}
}
