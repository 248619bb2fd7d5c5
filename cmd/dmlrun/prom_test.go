package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freePorts returns the first of n consecutive ports that are free on
// 127.0.0.1, below the kernel's ephemeral range (so that no OS-chosen port
// of a node or of another test takes one meanwhile).
func freePorts(t *testing.T, n int) int {
	t.Helper()
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				lo = v
			}
		}
	}
	const from = 20000
	if lo-n <= from {
		t.Fatalf("the ephemeral port range starts at %d: no room below it for %d fixed ports", lo, n)
	}
	for range 200 {
		base := from + rand.IntN(lo-n-from)
		var lns []net.Listener
		for i := range n {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if len(lns) == n {
			return base
		}
	}
	t.Fatalf("found no %d consecutive free ports", n)
	return 0
}

// promServer is a Prometheus server started by a test.
type promServer struct {
	url string // http://127.0.0.1:PORT
	log *syncBuffer
}

// startPrometheus starts the prometheus binary with a 1 s scrape interval
// on targets, its data in a temporary directory, and waits until it is
// ready. It skips the test when prometheus is not installed.
func startPrometheus(t *testing.T, targets []string) *promServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skipf("no prometheus binary (%v): install it (apt-get install prometheus; .ci/run does) to run this test", err)
	}
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
scrape_configs:
  - job_name: dmlrun
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", "))
	confFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePorts(t, 1)))
	cmd := exec.Command(bin, "--config.file="+confFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { // before t.TempDir's removal: prometheus writes there until it exits
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	s := &promServer{url: "http://" + addr, log: &log}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("prometheus exited at start:\n%s", log.String())
		default:
		}
		if code, _ := httpGet(s.url + "/-/ready"); code == http.StatusOK {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready at %s after 30 s:\n%s", addr, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// httpGet GETs u with a short deadline and returns the status and body.
func httpGet(u string) (int, []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// query evaluates an instant PromQL query and returns its samples by
// instance label (and their other labels, as "k=v" pairs, after a slash).
func (s *promServer) query(q string) (map[string]float64, error) {
	code, body := httpGet(s.url + "/api/v1/query?query=" + url.QueryEscape(q))
	if code != http.StatusOK {
		return nil, fmt.Errorf("query %s: status %d: %s", q, code, body)
	}
	var r struct {
		Status string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		return nil, fmt.Errorf("query %s: %v: %s", q, err, body)
	}
	out := map[string]float64{}
	for _, res := range r.Data.Result {
		key := res.Metric["instance"]
		for _, l := range []string{"peer", "name", "reason"} {
			if v, ok := res.Metric[l]; ok {
				key += "/" + l + "=" + v
			}
		}
		str, _ := res.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", q, res.Value[1], err)
		}
		out[key] = v
	}
	return out, nil
}

// waitQuery polls q until ok accepts its samples, for at most timeout.
func (s *promServer) waitQuery(t *testing.T, what, q string, timeout time.Duration, ok func(map[string]float64) bool, job *syncBuffer) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last map[string]float64
	var err error
	for time.Now().Before(deadline) {
		if last, err = s.query(q); err == nil && ok(last) {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: after %v, %s gives %v (error %v)\nprometheus:\n%s\njob (the end):\n%s", what, timeout, q, last, err, s.log.String(), tail(job.String(), 8<<10))
	return nil
}

// tail is the end of s, at most n bytes of whole lines.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// metricsPortOf returns the port a node process serves metrics on, from
// its command line.
func metricsPortOf(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(string(b), "\x00")
	for i, a := range args {
		if a == "-metrics" && i+1 < len(args) {
			return args[i+1]
		}
	}
	t.Fatalf("node %d has no -metrics flag: %q", pid, args)
	return ""
}

// TestPrometheusScrapesJob: a real Prometheus server scrapes `dmlrun -np 3
// -metrics-port P` every second. Through its query API: every node is up
// with world size 3, its steps increase, it reports build info, test
// accuracy and bytes to both ring neighbours; after one node is killed
// (-9), the two others report world size 2, a recovery and a new ring
// epoch, and their steps go on increasing.
func TestPrometheusScrapesJob(t *testing.T) {
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Skipf("no prometheus binary (%v): install it (apt-get install prometheus; .ci/run does) to run this test", err)
	}
	const n = 3
	base := freePorts(t, n)
	var targets []string
	for i := range n {
		targets = append(targets, net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
	}
	prom := startPrometheus(t, targets)

	dir := t.TempDir()
	cfg := jobConfig(t, dir, fmt.Sprintf(recoverJob, 100000000, 1000, "30s"))
	cmd := exec.Command(dmlrunBin, "-np", strconv.Itoa(n), "-metrics-port", strconv.Itoa(base), cfg)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { // SIGINT stops every node; a launcher that does not exit is killed (its nodes follow)
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})

	all := func(count int, pred func(float64) bool) func(map[string]float64) bool {
		return func(m map[string]float64) bool {
			if len(m) != count {
				return false
			}
			for _, v := range m {
				if !pred(v) {
					return false
				}
			}
			return true
		}
	}
	eq := func(x float64) func(float64) bool { return func(v float64) bool { return v == x } }
	positive := func(v float64) bool { return v > 0 }
	const wait = 90 * time.Second
	prom.waitQuery(t, "3 targets up", `up{job="dmlrun"}`, wait, all(n, eq(1)), &stderr)
	prom.waitQuery(t, "world size 3 everywhere", `dmlrun_world_size`, wait, all(n, eq(3)), &stderr)
	first := prom.waitQuery(t, "steps on every node", `dmlrun_steps_total`, wait, all(n, positive), &stderr)
	prom.waitQuery(t, "steps increasing on every node", `dmlrun_steps_total`, wait, func(m map[string]float64) bool {
		for inst, v := range first {
			if m[inst] <= v {
				return false
			}
		}
		return len(m) == n
	}, &stderr)
	for _, c := range []struct{ what, q string }{
		{"build info", `dmlrun_build_info{version!="",goversion=~"go.+"}`},
		{"test accuracy", `dmlrun_test_metric{name="accuracy"}`},
		{"step time histogram", `histogram_quantile(0.5, rate(dmlrun_step_duration_seconds_bucket[5s]))`},
	} {
		prom.waitQuery(t, c.what, c.q, wait, all(n, positive), &stderr)
	}
	for _, dir := range []string{"sent", "received"} { // a link per neighbour; small vectors may use one direction only
		prom.waitQuery(t, "a "+dir+" series per neighbour", `count by (instance) (dmlrun_`+dir+`_bytes_total)`, wait, all(n, eq(2)), &stderr)
		prom.waitQuery(t, "bytes "+dir+" growing", `sum by (instance) (rate(dmlrun_`+dir+`_bytes_total[5s]))`, wait, all(n, positive), &stderr)
	}
	epochs, err := prom.query(`dmlrun_ring_epoch`)
	if err != nil {
		t.Fatal(err)
	}

	nodes := children(cmd.Process.Pid)
	if len(nodes) != n {
		t.Fatalf("%d node processes, want %d", len(nodes), n)
	}
	victim := nodes[rand.IntN(n)]
	gone := metricsPortOf(t, victim)
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	survivors := func(m map[string]float64) bool { _, ok := m[gone]; return !ok && len(m) == n-1 }
	prom.waitQuery(t, "the killed node down", `up{job="dmlrun"} == 0`, wait, func(m map[string]float64) bool { _, ok := m[gone]; return ok && len(m) == 1 }, &stderr)
	prom.waitQuery(t, "world size 2 on the survivors", `dmlrun_world_size`, wait, func(m map[string]float64) bool {
		return survivors(m) && all(n-1, eq(2))(m)
	}, &stderr)
	prom.waitQuery(t, "a recovery on each survivor", `sum by (instance) (dmlrun_recoveries_total)`, wait, func(m map[string]float64) bool {
		return survivors(m) && all(n-1, func(v float64) bool { return v >= 1 })(m)
	}, &stderr)
	after := prom.waitQuery(t, "a new ring epoch", `dmlrun_ring_epoch`, wait, func(m map[string]float64) bool {
		for inst, e := range m {
			if e == epochs[inst] {
				return false
			}
		}
		return survivors(m)
	}, &stderr)
	steps, err := prom.query(`dmlrun_steps_total`)
	if err != nil {
		t.Fatal(err)
	}
	prom.waitQuery(t, "steps increasing on the survivors", `dmlrun_steps_total`, wait, func(m map[string]float64) bool {
		for inst := range after {
			if m[inst] <= steps[inst] {
				return false
			}
		}
		return survivors(m)
	}, &stderr)
	if !strings.Contains(stderr.String(), "lost node") {
		t.Errorf("the launcher did not report the lost node:\n%s", stderr.String())
	}
}

// TestMetricsPortInUse: a node whose metrics port is taken stops the job
// before training, with an error that names the address.
func TestMetricsPortInUse(t *testing.T) {
	base := freePorts(t, 2)
	taken := net.JoinHostPort("127.0.0.1", strconv.Itoa(base+1))
	ln, err := net.Listen("tcp", taken)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	cfg := jobConfig(t, dir, fmt.Sprintf(recoverJob, 100, 50, "30s"))
	_, stderr, err := dmlrun(t, time.Minute, "-np", "2", "-metrics-port", strconv.Itoa(base), cfg)
	if err == nil {
		t.Fatalf("exit 0 with metrics port %s taken:\n%s", taken, stderr)
	}
	if want := "-metrics " + taken + ": the port is already in use"; !strings.Contains(stderr, want) {
		t.Fatalf("stderr does not say %q:\n%s", want, stderr)
	}
}
