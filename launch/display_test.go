package launch

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestNoticeHandler(t *testing.T) {
	var full bytes.Buffer
	var sent []LogLine
	log := slog.New(NewNoticeHandler(slog.NewTextHandler(&full, nil), "notice", func(l LogLine) { sent = append(sent, l) }))
	log = log.With("node", "n1")
	log.Info("plain", "a", 1)                          // the file only
	log.Info("ring formed", "size", 4, "notice", true) // both
	log.Info("not shown", "notice", false)             // the file only
	log.Error("broke", "err", errors.New("boom"))      // errors always
	log.WithGroup("g").Info("grouped", "x", 0.123456789, slog.Bool("notice", true))
	for _, want := range []string{"msg=plain", `msg="ring formed"`, `msg="not shown"`, "msg=broke", "msg=grouped"} {
		if !strings.Contains(full.String(), want) {
			t.Errorf("full log lacks %s:\n%s", want, full.String())
		}
	}
	want := []struct {
		msg, level string
		attrs      []KV
	}{
		{"ring formed", "INFO", []KV{{"node", "n1"}, {"size", "4"}}},
		{"broke", "ERROR", []KV{{"node", "n1"}, {"err", "boom"}}},
		{"grouped", "INFO", []KV{{"node", "n1"}, {"g.x", "0.123457"}}},
	}
	if len(sent) != len(want) {
		t.Fatalf("sent %d lines, want %d: %+v", len(sent), len(want), sent)
	}
	for i, w := range want {
		s := sent[i]
		if s.Msg != w.msg || s.Level != w.level || len(s.Attrs) != len(w.attrs) {
			t.Errorf("line %d: %+v, want %+v", i, s, w)
			continue
		}
		for j := range w.attrs {
			if s.Attrs[j] != w.attrs[j] {
				t.Errorf("line %d attr %d: %v, want %v", i, j, s.Attrs[j], w.attrs[j])
			}
		}
	}
}

// Plain mode prints a line at every 10% (and every 10 s), with no escape
// byte; lines from nodes carry their label and leave the node's name out.
func TestDisplayPlain(t *testing.T) {
	var out bytes.Buffer
	d := NewDisplay(&out, ProgressAuto) // a buffer is no terminal: plain
	if d.Mode() != ProgressPlain {
		t.Fatalf("mode %v on a buffer", d.Mode())
	}
	d.Phase("gathering nodes")
	for step := 0; step <= 100; step++ {
		d.Update(Progress{Phase: "training", Step: step, Steps: 100, Epoch: 1 + step/50, Loss: 0.5, HasLoss: true,
			Samples: int64(step) * 64, World: 3})
	}
	d.Node("2", LogLine{Time: time.Now(), Level: "WARN", Msg: "ring failed", Attrs: []KV{{"node", "x"}, {"cause", "peer gone"}}})
	d.Close()
	s := out.String()
	if strings.ContainsRune(s, 0x1b) {
		t.Fatalf("escape byte in plain output:\n%q", s)
	}
	for _, want := range []string{"step 0/100 (0%) epoch 1 loss 0.5", "step 50/100 (50%) epoch 2", "step 100/100 (100%)", "world 3",
		`[2] WARN ring failed cause="peer gone"`} {
		if !strings.Contains(s, want) {
			t.Errorf("no %q in:\n%s", want, s)
		}
	}
	if n := strings.Count(s, "\nstep ") + 1; n != 11 {
		t.Errorf("%d progress lines, want 11 (one per 10%%):\n%s", n, s)
	}
	if strings.Contains(s, "node=x") {
		t.Errorf("the node's name was shown beside its label:\n%s", s)
	}
	var none bytes.Buffer
	d = NewDisplay(&none, ProgressNone)
	d.Update(Progress{Phase: "training", Step: 50, Steps: 100})
	d.Printf("a line")
	d.Close()
	if none.String() != "a line\n" {
		t.Errorf("none mode printed %q", none.String())
	}
}

func TestParseProgressMode(t *testing.T) {
	for s, want := range map[string]ProgressMode{"auto": ProgressAuto, "bar": ProgressBar, "plain": ProgressPlain, "none": ProgressNone} {
		if m, err := ParseProgressMode(s); err != nil || m != want {
			t.Errorf("%s: %v, %v", s, m, err)
		}
	}
	if _, err := ParseProgressMode("fancy"); err == nil || !strings.Contains(err.Error(), "want auto, bar, plain or none") {
		t.Errorf("fancy: %v", err)
	}
}

// exitErr runs a shell that ends as script says, for a real *exec.ExitError.
func exitErr(t *testing.T, script string) error {
	t.Helper()
	err := exec.CommandContext(context.Background(), "sh", "-c", script).Run()
	if err == nil {
		t.Fatalf("%s: exit 0", script)
	}
	return err
}

func TestJobErrorRootCause(t *testing.T) {
	status3, killed := exitErr(t, "exit 3"), exitErr(t, "kill -9 $$")
	t0 := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	n := func(label string, rank int) nodeID { return nodeID{Label: label, Host: "h" + label, Rank: rank} }
	for _, tc := range []struct {
		name     string
		list     []failure
		allLost  bool
		wantNil  bool
		wantRoot string
		wantCode int
	}{
		{"no failure", nil, false, true, "", 0},
		{"only a lost node: the job went on", []failure{{node: n("1", 1), exit: killed, lost: true}}, false, true, "", 0},
		{"every node lost", []failure{{node: n("1", 1), exit: killed, lost: true, at: t0}}, true, false,
			"node 1 (host h1, rank 1) was killed by signal 9 (killed) at 07:00:00.000", 137},
		{"a lost node, then quorum lost", []failure{
			{node: n("2", 2), exit: killed, lost: true, at: t0},
			{node: n("0", 0), exit: status3, last: "dmlrun: quorum lost", at: t0.Add(time.Second)}}, false, false,
			"node 2 (host h2, rank 2) was killed by signal 9", 137},
		{"a fault is the cause even after a loss", []failure{
			{node: n("2", 2), exit: killed, lost: true, at: t0},
			{node: n("0", 0), fault: "disk full", at: t0.Add(time.Second)}}, false, false,
			"node 0 (host h0, rank 0) failed: disk full", 1},
		{"before training: its status", []failure{{node: n("1", -1), exit: status3, last: "level=ERROR msg=x", at: t0}}, false, false,
			"node 1 (host h1) exited with status 3 at 07:00:00.000\n    its last error: level=ERROR msg=x", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := failures{list: tc.list}
			err := fs.jobError(tc.allLost)
			if tc.wantNil {
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				return
			}
			var je *JobError
			if !errors.As(err, &je) {
				t.Fatalf("error %v, want a *JobError", err)
			}
			if !strings.HasPrefix(je.Root, tc.wantRoot) || je.Code != tc.wantCode {
				t.Fatalf("root %q code %d, want %q… code %d", je.Root, je.Code, tc.wantRoot, tc.wantCode)
			}
			if len(je.Others) != len(tc.list)-1 || !strings.HasPrefix(err.Error(), "job failed; root cause: "+je.Root) {
				t.Fatalf("error %q", err)
			}
		})
	}
}

// A sweep counts sizes, not steps: its plain lines carry no loss or rate.
func TestDisplayPlainSweep(t *testing.T) {
	var out bytes.Buffer
	d := NewDisplay(&out, ProgressPlain)
	for k := 0; k <= 4; k++ {
		d.Update(Progress{Phase: "allreduce sweep", Unit: "size", Step: k, Steps: 4, World: 2})
	}
	d.Close()
	for _, want := range []string{"allreduce sweep size 0/4 (0%) ETA ? world 2", "allreduce sweep size 4/4 (100%) ETA"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "loss") {
		t.Errorf("a sweep line shows a loss:\n%s", out.String())
	}
}
