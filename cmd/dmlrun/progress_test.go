package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// progressJob is long enough (a few seconds under -race) for the display to
// draw several times, with evaluations (notices) on the way.
const progressJob = `name: progress
seed: 3
data: {format: synthetic, synthetic: {task: binary, samples: 20000, features: 10, noise: 0.3}}
model: {kind: logistic}
optimizer: {kind: sgd, lr: 0.1}
training: {batch_size: 64, steps: 3000, eval_every: 1000}
`

// TestProgressBarInTerminal runs a job in a real pseudo-terminal: the bar
// shows the phase, step K/M, samples/s and ETA, and the nodes' notices are
// printed above it (the bar is cleared, the line written, the bar redrawn
// below).
func TestProgressBarInTerminal(t *testing.T) {
	cfg := jobConfig(t, t.TempDir(), progressJob)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, dmlrunBin, "-np", "3", cfg)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var out bytes.Buffer
	_, err = io.Copy(&out, tty) // ends with EIO once the job has exited
	if err != nil && !errors.Is(err, syscall.EIO) {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dmlrun in a terminal: %v\n%s", err, out.String())
	}
	s := out.String()
	bar := regexp.MustCompile(`(?:training|saving|done) step \d+/3000 \[[=>-]+\]\s+\d+% epoch \d+ loss [0-9.e-]+ samples/s \d+ ETA \S+ world 3`)
	if !bar.MatchString(s) {
		t.Fatalf("no bar line with step K/M, samples/s, ETA and world size:\n%q", s)
	}
	above := regexp.MustCompile(`\x1b\[J\d\d:\d\d:\d\d \[0\] eval rank=0 step=\d+ `)
	if !above.MatchString(s) {
		t.Fatalf("no evaluation line printed in place of a cleared bar:\n%q", s)
	}
	lastBar, lastEval := bar.FindAllStringIndex(s, -1), strings.LastIndex(s, " eval rank=0 step=3000 ")
	if lastEval < 0 || lastBar[len(lastBar)-1][0] < lastEval {
		t.Fatalf("the bar is not below the last evaluation line:\n%q", s)
	}
	if !strings.Contains(s, "all 3 nodes hold identical θ") {
		t.Fatalf("no result line:\n%q", s)
	}
}

// TestProgressPiped: without a terminal there is not one escape byte, and
// the plain progress lines and the summary are there; each node's full log
// is in its file.
func TestProgressPiped(t *testing.T) {
	cfg := jobConfig(t, t.TempDir(), progressJob)
	out, errOut, err := dmlrun(t, 2*time.Minute, "-np", "3", cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	all := out + errOut
	if i := strings.IndexByte(all, 0x1b); i >= 0 {
		t.Fatalf("escape byte at %d of piped output:\n%q", i, all)
	}
	plain := regexp.MustCompile(`(?m)^step \d+/3000 \(\d+%\) epoch \d+ loss [0-9.e-]+ samples/s \d+ ETA \S+ world 3$`)
	if n := len(plain.FindAllString(errOut, -1)); n < 2 {
		t.Fatalf("%d plain progress lines, want at least 2:\n%s", n, errOut)
	}
	if !regexp.MustCompile(`done: 3000 steps in \S+ \(\d+ samples/s\), train loss \S+, test loss \S+, test accuracy 0\.\d+`).MatchString(out) {
		t.Fatalf("no summary line:\n%s", out)
	}
	if n := strings.Count(errOut, "] ring formed"); n != 1 {
		t.Fatalf("%d ring formed lines on the terminal, want 1 (rank 0's):\n%s", n, errOut)
	}
	logs := filepath.Join(outDir(cfg), "logs")
	for i, log := range nodeLogs(t, cfg, 3) {
		if !strings.Contains(log, `msg="ring formed"`) || !strings.Contains(log, `msg=done`) {
			t.Fatalf("node %d's log:\n%s", i, log)
		}
	}
	if !strings.Contains(out, "logs in "+logs) {
		t.Fatalf("the summary does not say where the logs are:\n%s", out)
	}
}
