package launch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary is also the child: with LAUNCH_TEST_CHILD set, TestMain
// runs one of the children below instead of the tests (exchange_test.go's
// child is a test function, TestHelperChild).
func TestMain(m *testing.M) {
	if mode := os.Getenv("LAUNCH_TEST_CHILD"); mode != "" && mode != "exchange" { // exchange: TestHelperChild

		if err := testChild(mode); err != nil {
			fmt.Fprintf(os.Stderr, "dmlrun: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testPayload is the payload of the test children's hello.
type testPayload struct {
	Rank  int `json:"rank"`
	Parts int `json:"parts"`
}

// testChild is a worker of the protocol: "ok" reports its address, sends
// its parts and its result; "hang" reads its hello and never reports;
// "wait" takes part in the rendezvous, then waits to be stopped; "die"
// kills itself once it has the join list.
func testChild(mode string) error {
	w, err := Attach[testPayload](os.Stdin, os.Stdout)
	if err != nil {
		return err
	}
	if mode == "hang" {
		w.WatchEOF(func() {})
		return errors.New("stopped")
	}
	addrs, err := w.Rendezvous(fmt.Sprintf("%s:%d", w.Hello.Host, 1000+w.Payload.Rank), func() { os.Exit(3) })
	if err != nil {
		return err
	}
	if len(addrs) != w.Hello.Nodes || w.Hello.Secret != "s3cret" {
		return fmt.Errorf("join list %v for %d nodes, secret %q", addrs, w.Hello.Nodes, w.Hello.Secret)
	}
	switch mode {
	case "wait": // until the launcher stops the job (gone exits)
		select {}
	case "die":
		fmt.Fprintln(os.Stderr, "dmlrun: about to die")
		return syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	for p := range w.Payload.Parts {
		if err := w.SendPart(map[string]int{"rank": w.Payload.Rank, "part": p}); err != nil {
			return err
		}
	}
	return w.Send(NodeReport{Rank: w.Payload.Rank, Extra: strings.Join(addrs, ",")})
}

// testJob is a job of n test children, child i in mode modes[i].
func testJob(t *testing.T, modes ...string) Job {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	job := Job{Noun: "rank", StartTimeout: 20 * time.Second}
	for i, m := range modes {
		job.Specs = append(job.Specs, Spec{Label: fmt.Sprint(i), Argv: []string{self}, Env: []string{"LAUNCH_TEST_CHILD=" + m}})
		job.Hellos = append(job.Hellos, NodeHello{Secret: "s3cret", Host: "127.0.0.1", Slot: i, Nodes: len(modes),
			Extra: testPayload{Rank: i, Parts: 2 + i}})
	}
	return job
}

// TestRunJobWorkers runs the whole protocol with payloads: the hello's
// Extra reaches Attach, the rendezvous hands everyone every address, parts
// stream to OnPart after OnJoined, and each child's result comes back.
func TestRunJobWorkers(t *testing.T) {
	job := testJob(t, "ok", "ok", "ok")
	joined := 0
	var parts []string
	job.OnJoined = func() { joined++ }
	job.OnPart = func(i int, part json.RawMessage) {
		if joined != 1 {
			t.Errorf("part from %d before the rendezvous ended", i)
		}
		parts = append(parts, fmt.Sprintf("%d:%s", i, part))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := RunJob(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if joined != 1 || len(parts) != 2+3+4 || len(res.Reports) != 3 {
		t.Fatalf("joined %d times, parts %v, %d reports", joined, parts, len(res.Reports))
	}
	for i, rep := range res.Reports {
		if rep.Rank != i || rep.Extra != "127.0.0.1:1000,127.0.0.1:1001,127.0.0.1:1002" {
			t.Errorf("report %d: %+v", i, rep)
		}
	}
}

// TestRunJobRankKilled: a child killed after the rendezvous fails the job,
// named with the job's noun, its signal and its last error line; the job
// exits with 128+9 and the others are stopped.
func TestRunJobRankKilled(t *testing.T) {
	job := testJob(t, "wait", "die")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err := RunJob(ctx, job)
	var je *JobError
	if !errors.As(err, &je) {
		t.Fatalf("err %v, want a *JobError", err)
	}
	if !strings.HasPrefix(je.Root, "rank 1 (host 127.0.0.1) was killed by signal 9") || !strings.Contains(je.Root, "its last error: dmlrun: about to die") || je.Code != 128+9 {
		t.Fatalf("root %q, code %d", je.Root, je.Code)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("took %v", took)
	}
}

// TestRunJobStartTimeout: a child that never reports its address fails the
// job after StartTimeout.
func TestRunJobStartTimeout(t *testing.T) {
	job := testJob(t, "ok", "hang")
	job.StartTimeout = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := RunJob(ctx, job)
	if err == nil || !strings.Contains(err.Error(), "waiting for the ranks to start: 1 of 2 reported within 500ms") {
		t.Fatalf("err %v", err)
	}
}

// TestKillGroupDescendants: KillGroup reaches a grandchild that left the
// child's process group (as mpirun's ranks do).
func TestKillGroupDescendants(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid")
	}
	cmd := exec.Command("sh", "-c", "setsid sleep 300 & wait")
	cmd.SysProcAttr = ProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var kids []int
	for deadline := time.Now().Add(10 * time.Second); len(kids) == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		kids = descendants(cmd.Process.Pid)
	}
	if len(kids) == 0 {
		t.Fatal("the grandchild never appeared")
	}
	if err := KillGroup(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for _, k := range kids {
		for deadline := time.Now().Add(5 * time.Second); syscall.Kill(k, 0) == nil; {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", k)); strings.Contains(string(b), ") Z ") {
				break // dead, not yet reaped by init
			}
			if time.Now().After(deadline) {
				t.Fatalf("grandchild %d survived KillGroup", k)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
