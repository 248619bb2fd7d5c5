package testbed

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestSSH brings up three hosts with sshd, logs in from host 0 to host 2
// with the bed's ssh command, checks plain TCP between hosts 1 and 2, then
// closes the bed and checks that nothing of it is left.
func TestSSH(t *testing.T) {
	start := time.Now()
	b := New(t, 3, Options{SSH: true})
	t.Logf("New(3 hosts, SSH) took %v", time.Since(start))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The remote command runs on host 2: it sees host 2's address.
	out, err := b.SSHCommand(ctx, 0, 2, "ip -4 -o addr show dev eth0").CombinedOutput()
	if err != nil {
		t.Fatalf("ssh host 0 -> host 2: %v: %s", err, out)
	}
	if !strings.Contains(string(out), " "+b.Hosts[2].IP+"/24 ") {
		t.Errorf("ssh to host 2 ran where eth0 is %q, want %s", out, b.Hosts[2].IP)
	}
	// The same through the ssh_config alias, with b.SSH as a launcher uses it.
	args := append(append([]string{}, b.SSH[1:]...), "h1", "echo", "ok")
	if out, err := b.Command(ctx, 0, b.SSH[0], args...).CombinedOutput(); err != nil || string(out) != "ok\n" {
		t.Errorf("ssh h1 echo ok: %v: %q", err, out)
	}

	// Plain TCP from host 1 to host 2's sshd, by a shell on host 1 and by Dial.
	probe := "exec 3<>/dev/tcp/" + b.Hosts[2].IP + "/22"
	if out, err := b.Command(ctx, 1, "bash", "-c", probe).CombinedOutput(); err != nil {
		t.Errorf("bash /dev/tcp host 1 -> host 2:22: %v: %s", err, out)
	}
	c, err := b.Dial(ctx, 1, "tcp", b.Hosts[2].IP+":22")
	if err != nil {
		t.Fatalf("Dial host 1 -> host 2:22: %v", err)
	}
	c.Close()

	// A host knows only the bed's subnet: no default route out.
	routes, err := b.Command(ctx, 0, "ip", "-4", "route").CombinedOutput()
	if err != nil || strings.Contains(string(routes), "default") {
		t.Errorf("host 0 routes: %v: %q, want only the subnet", err, routes)
	}

	start = time.Now()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("Close took %v", time.Since(start))
	checkGone(t, b)
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// checkGone fails unless every namespace, process and file of b is gone.
func checkGone(t *testing.T, b *Bed) {
	t.Helper()
	ents, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), b.Run+"-") {
			t.Errorf("namespace %s left after Close", e.Name())
		}
	}
	if pids := procsMentioning(t, b.Dir); len(pids) > 0 {
		t.Errorf("processes %v (the bed's sshds?) left after Close", pids)
	}
	if _, err := os.Stat(b.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Dir %s left after Close: %v", b.Dir, err)
	}
}

// procsMentioning lists the processes with an argument that contains s.
func procsMentioning(t *testing.T, s string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmdline), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestShapedRate sends bulk TCP (iperf3, 2 s) between two hosts whose links
// are shaped to 100 Mbit/s.
func TestShapedRate(t *testing.T) {
	if _, err := lookTool("iperf3"); err != nil {
		t.Skip("iperf3 not installed (Debian: apt-get install iperf3)")
	}
	b := New(t, 2, Options{RateMbit: 100})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	srv := b.Command(ctx, 1, "iperf3", "-s", "-1", "-B", b.Hosts[1].IP, "--forceflush")
	srv.WaitDelay = time.Second
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { // on every path: kill (a no-op after -1 made it exit) and reap
		_ = srv.Process.Kill()
		_ = srv.Wait()
	}()
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Server listening") {
				close(listening)
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case <-listening:
	case <-ctx.Done():
		t.Fatal("iperf3 server did not start listening")
	}

	out, err := b.Command(ctx, 0, "iperf3", "-c", b.Hosts[1].IP, "-t", "2", "-J").Output()
	if err != nil {
		t.Fatalf("iperf3 client: %v: %s", err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("iperf3 JSON: %v", err)
	}
	mbit := res.End.SumReceived.BitsPerSecond / 1e6
	t.Logf("host 0 -> host 1 at RateMbit 100: %.1f Mbit/s received", mbit)
	if mbit < 50 || mbit > 110 {
		t.Errorf("shaped rate %.1f Mbit/s, want 50 to 110", mbit)
	}
}

// TestPartition cuts host 0 off from hosts 1 and 2, then heals the cut.
func TestPartition(t *testing.T) {
	b := New(t, 3, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	addrs := make([]string, len(b.Hosts))
	for i := range b.Hosts {
		l, err := b.Listen(i, "tcp", b.Hosts[i].IP+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		addrs[i] = l.Addr().String()
		go serveEcho(l)
	}
	// connects reports whether from reaches to's listener within timeout.
	connects := func(from, to int, timeout time.Duration) bool {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		c, err := b.Dial(ctx, from, "tcp", addrs[to])
		if err != nil {
			if ne := net.Error(nil); !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("dial %d -> %d: %v, want a timeout as on a cut link", from, to, err)
			}
			return false
		}
		c.Close()
		return true
	}
	pairs := [][2]int{{0, 1}, {1, 0}, {0, 2}, {2, 0}, {1, 2}, {2, 1}}
	check := func(when string, cut map[[2]int]bool) {
		t.Helper()
		for _, p := range pairs {
			// A cut shows as a timeout: wait 300 ms for it. A working link
			// connects at once; allow a loaded machine 3 s.
			timeout := 3 * time.Second
			if cut[p] {
				timeout = 300 * time.Millisecond
			}
			if got := connects(p[0], p[1], timeout); got == cut[p] {
				t.Errorf("%s: host %d -> host %d connects: %v, want %v", when, p[0], p[1], got, !cut[p])
			}
		}
	}
	check("before Partition", nil)

	// A connection open across the cut stalls, then resumes after Heal.
	c, err := b.Dial(ctx, 0, "tcp", addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echo(t, c, time.Second)

	start := time.Now()
	b.Partition([]int{0}, []int{1, 2})
	t.Logf("Partition took %v", time.Since(start))
	check("partitioned", map[[2]int]bool{{0, 1}: true, {1, 0}: true, {0, 2}: true, {2, 0}: true})
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read across the cut: %v, want a timeout", err)
	}

	b.Heal()
	check("healed", nil)
	// The stalled byte is retransmitted (RTO backoff: well under 5 s).
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Errorf("read after Heal: %v", err)
	}
}

func serveEcho(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

func echo(t *testing.T, c net.Conn, timeout time.Duration) {
	t.Helper()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
}

// TestSweep leaves the remains of a "crashed" run (a dead pid's namespace
// with a process in it, a stray process naming its directory, the
// directory) and of a live run, and checks that Sweep removes only the
// first.
func TestSweep(t *testing.T) {
	if err := findTools(Options{}); err != nil {
		t.Skipf("skipping: %v", err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := Prefix + strconv.Itoa(dead.Process.Pid) + "-1"
	alive := Prefix + strconv.Itoa(os.Getpid()) + "-999999"
	deadline := time.Now().Add(closeTimeout)
	t.Cleanup(func() {
		_ = removeNS(stale+"-h0", deadline)
		_ = removeNS(alive+"-h0", deadline)
	})
	for _, ns := range []string{stale + "-h0", alive + "-h0"} {
		if err := run(nil, "ip", "netns", "add", ns); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := os.MkdirTemp("", stale+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	inNS := exec.Command(toolPath("ip"), "netns", "exec", stale+"-h0", "sleep", "30")
	stray := exec.Command("sleep", "30") // looks like a bed's sshd: its argv names the dir
	stray.Args[0] = filepath.Join(dir, "h0", "sshd_config")
	for _, c := range []*exec.Cmd{inNS, stray} {
		c.SysProcAttr = pdeathsig()
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	}
	// Sweep may only look once the sleeper has entered the namespace.
	waitFor(t, "sleep in the stale namespace", func() bool {
		pids, err := nsPids(stale + "-h0")
		return err == nil && len(pids) == 1
	})

	if err := Sweep(); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	for _, c := range []*exec.Cmd{inNS, stray} {
		if err := waitExit(c, 5*time.Second); err != nil {
			t.Errorf("%v: %v, want it killed by Sweep", c.Args, err)
		}
	}
	if _, err := os.Stat(filepath.Join(netnsDir, stale+"-h0")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale namespace still there: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale directory still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, alive+"-h0")); err != nil {
		t.Errorf("Sweep removed a live run's namespace: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// waitExit reaps c if it exits within timeout.
func waitExit(c *exec.Cmd, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			return errors.New("exited normally")
		}
		return nil
	case <-time.After(timeout):
		_ = c.Process.Kill()
		<-done
		return errors.New("still running")
	}
}

// TestCloseAll closes a bed made by Start (as a signal handler would) and
// checks that it is gone.
func TestCloseAll(t *testing.T) {
	if err := findTools(Options{}); err != nil {
		t.Skipf("skipping: %v", err)
	}
	b, err := Start(1, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := CloseAll(); err != nil {
		t.Fatalf("CloseAll: %v", err)
	}
	checkGone(t, b)
}

func TestHostsFile(t *testing.T) {
	b := &Bed{Run: "r", Dir: t.TempDir(), Hosts: []Host{{IP: "10.0.0.1"}, {IP: "10.0.0.2"}, {IP: "10.0.0.3"}}}
	b.tb = t
	for _, tc := range []struct {
		slots []int
		want  string
	}{
		{nil, "10.0.0.1 slots=1\n10.0.0.2 slots=1\n10.0.0.3 slots=1\n"},
		{[]int{2, 0, 4}, "10.0.0.1 slots=2\n10.0.0.3 slots=4\n"},
	} {
		data, err := os.ReadFile(b.HostsFile(tc.slots))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.SplitN(string(data), "\n", 2)[1]; got != tc.want {
			t.Errorf("HostsFile(%v) = %q, want %q", tc.slots, got, tc.want)
		}
	}
}

func TestStartRejects(t *testing.T) {
	for _, tc := range []struct {
		k    int
		opts Options
		want string
	}{
		{0, Options{}, "0 hosts"},
		{MaxHosts + 1, Options{}, "251 hosts"},
		{2, Options{RateMbit: -1}, "RateMbit -1"},
	} {
		b, err := Start(tc.k, tc.opts)
		if err == nil {
			b.Close()
			t.Errorf("Start(%d, %+v) succeeded", tc.k, tc.opts)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%d, %+v): %v, want %q", tc.k, tc.opts, err, tc.want)
		}
	}
}

// BenchmarkStart4SSH times bringing up (and closing) a bed of four hosts
// with sshd, as a multi-host test pays it.
func BenchmarkStart4SSH(b *testing.B) {
	if err := findTools(Options{SSH: true}); err != nil {
		b.Skipf("skipping: %v", err)
	}
	for b.Loop() {
		bed, err := Start(4, Options{SSH: true, RateMbit: 1000})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := bed.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
