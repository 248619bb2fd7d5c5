package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmlrun/dmlrun/internal/testbed"
	"github.com/dmlrun/dmlrun/train"
)

// TestMultihostPredict: `dmlrun predict -hosts` from host 0 over ssh to 3
// hosts (one with 2 slots) writes, to -o FILE and to -o DIR/, byte for byte
// what one process writes; and a worker killed on a remote host fails the
// run with the summary naming it, leaving no output.
func TestMultihostPredict(t *testing.T) {
	b := testbed.New(t, 3, testbed.Options{SSH: true})
	dir := t.TempDir()
	model := writePredictModel(t, dir, train.KindSoftmax, 5, true)
	data := []string{
		writePredictCSV(t, filepath.Join(dir, "a.csv"), 3000, 5, 1),
		writePredictCSV(t, filepath.Join(dir, "b.csv.gz"), 1001, 5, 2),
		writePredictCSV(t, filepath.Join(dir, "c.csv"), 5000, 5, 3),
	}
	want := predictOne(t, model, data...)
	hosts := b.HostsFile([]int{1, 2, 1}) // ranks: 0@h0, 1@h1, 2@h1, 3@h2
	// A worker that stops after its first piece, for the kill: the remote
	// binary is a wrapper that sets DMLRUN_FAULT (ssh passes no environment).
	wrapper := filepath.Join(dir, "dmlrun-hold.sh")
	os.WriteFile(wrapper, []byte(fmt.Sprintf("#!/bin/sh\nDMLRUN_FAULT=predict-hold/3:%s exec %s \"$@\"\n", filepath.Join(dir, "fault"), dmlrunBin)), 0o755)

	for _, tc := range []struct {
		name, out string
		kill      bool
	}{
		{"to a file", "out.csv", false},
		{"to a directory", "preds/", false},
		{"a remote worker killed", "out.csv", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outDir := t.TempDir()
			dest := filepath.Join(outDir, tc.out)
			if strings.HasSuffix(tc.out, "/") {
				dest += "/"
			}
			args := []string{"predict", "-hosts", hosts, "-ssh", strings.Join(b.SSH, " "), "-progress", "none", "-model", model, "-o", dest}
			if tc.kill { // a failed run keeps its logs: in the test's directory
				args = append(args, "-remote-bin", wrapper, "-log-dir", filepath.Join(t.TempDir(), "logs"))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := b.Command(ctx, 0, dmlrunBin, append(args, data...)...)
			var stdout, stderr syncBuffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			if !tc.kill {
				if err := waitExit(t, cmd, 2*time.Minute, &stderr); err != nil {
					t.Fatalf("dmlrun predict -hosts: %v\n%s", err, stderr.String())
				}
				if !strings.Contains(stderr.String(), fmt.Sprintf("done: %d rows in ", strings.Count(want, "\n"))) {
					t.Fatalf("no done: line:\n%s", stderr.String())
				}
				var got []byte
				if strings.HasSuffix(dest, "/") {
					for i := range 4 {
						p, err := os.ReadFile(filepath.Join(dest, fmt.Sprintf("part-%05d.csv", i)))
						if err != nil {
							t.Fatal(err)
						}
						got = append(got, p...)
					}
				} else {
					var err error
					if got, err = os.ReadFile(dest); err != nil {
						t.Fatal(err)
					}
				}
				if string(got) != want {
					t.Fatalf("-hosts wrote %d bytes, one process %d", len(got), len(want))
				}
				return
			}
			waitForLine(t, &stderr, "holding after the first piece", time.Minute)
			pids := launchedPids(b, 2, "predict")
			if len(pids) != 1 {
				t.Fatalf("predict workers on host 2: %v", pids)
			}
			if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if err := waitExit(t, cmd, time.Minute, &stderr); err == nil {
				t.Fatalf("exit 0 after a worker was killed:\n%s", stderr.String())
			}
			if label := "node 3@" + b.Hosts[2].IP; !strings.Contains(stderr.String(), "root cause: "+label) {
				t.Fatalf("the summary does not name %s as the root cause:\n%s", label, stderr.String())
			}
			t.Logf("after the kill:\n%s", stderr.String())
			if _, err := os.Stat(dest); err == nil {
				t.Fatalf("%s written by a failed run", dest)
			}
			if names := dirFiles(t, outDir); len(names) != 0 {
				t.Fatalf("left behind: %v", names)
			}
			for i := range b.Hosts {
				if p := launchedPids(b, i, "predict"); len(p) > 0 {
					t.Fatalf("workers %v still running on host %d", p, i)
				}
			}
		})
	}
}
