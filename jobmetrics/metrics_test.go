package jobmetrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/elastic/elastictest"
	"github.com/dmlrun/dmlrun/ring"
	"github.com/dmlrun/dmlrun/train"
	"github.com/dmlrun/dmlrun/transport"
)

// scrape GETs url and parses the text exposition; it also returns the body.
func scrape(t *testing.T, url string) (map[string]*dto.MetricFamily, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v\n%s", url, resp.Status, err, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing the exposition: %v\n%s", err, body)
	}
	return mfs, body
}

// allreduceOnce runs one allreduce of a few floats on every comm.
func allreduceOnce(t *testing.T, comms []*elastic.Comm) {
	t.Helper()
	errs := elastictest.Parallel(comms, func(c *elastic.Comm) error {
		return c.AllReduce(context.Background(), ring.Sum, make([]float64, 100))
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// value is a sample's value, whatever its type (a histogram: its count).
func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

// TestPrometheusExposition drives the hooks as a node's trainer does and
// scrapes the handler: every dmlrun metric has its name, type, labels and
// value, the exposition passes promlint (base units, _total counters), and
// the byte counters add up across rings.
func TestPrometheusExposition(t *testing.T) {
	p := New()
	comms := elastictest.Comms(t, 2, elastictest.Config())
	allreduceOnce(t, comms)
	p.Ring(comms[0], 7)
	for i := range 3 {
		p.Step(10+i, time.Now().Add(-2*time.Millisecond), 500*time.Microsecond, 32, 0.25)
	}
	p.Eval(train.Metrics{N: 100, Loss: 0.3, Accuracy: 0.875}, false)
	p.Recovered(elastic.RingFailure(fmt.Errorf("step 3: %w", context.DeadlineExceeded)))
	p.Recovered(elastic.RingFailure(elastic.ErrMemberJoined))
	p.Recovered(elastic.RingFailure(fmt.Errorf("step 4: %w", io.ErrUnexpectedEOF)))
	p.Paused(30 * time.Millisecond)
	sent, recv, _ := comms[0].Mesh().Traffic(1)
	if sent == 0 || recv == 0 {
		t.Fatalf("the allreduce moved no bytes: %d, %d", sent, recv)
	}

	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	mfs, body := scrape(t, srv.URL)

	type sample struct {
		labels string // name=value pairs, sorted, comma-separated
		value  float64
	}
	for _, tc := range []struct {
		name    string
		typ     dto.MetricType
		samples []sample
	}{
		{"dmlrun_world_size", dto.MetricType_GAUGE, []sample{{"", 2}}},
		{"dmlrun_rank", dto.MetricType_GAUGE, []sample{{"", 0}}},
		{"dmlrun_ring_epoch", dto.MetricType_GAUGE, []sample{{"", 7}}},
		{"dmlrun_step", dto.MetricType_GAUGE, []sample{{"", 12}}},
		{"dmlrun_steps_total", dto.MetricType_COUNTER, []sample{{"", 3}}},
		{"dmlrun_samples_total", dto.MetricType_COUNTER, []sample{{"", 96}}},
		{"dmlrun_train_loss", dto.MetricType_GAUGE, []sample{{"", 0.25}}},
		{"dmlrun_step_duration_seconds", dto.MetricType_HISTOGRAM, []sample{{"", 3}}},
		{"dmlrun_allreduce_duration_seconds", dto.MetricType_HISTOGRAM, []sample{{"", 3}}},
		{"dmlrun_recovery_pause_seconds", dto.MetricType_HISTOGRAM, []sample{{"", 1}}},
		{"dmlrun_test_metric", dto.MetricType_GAUGE, []sample{{"name=accuracy", 0.875}, {"name=loss", 0.3}}},
		{"dmlrun_recoveries_total", dto.MetricType_COUNTER, []sample{{"reason=frame_auth", 0}, {"reason=member_joined", 1},
			{"reason=peer_lost", 1}, {"reason=protocol", 0}, {"reason=timeout", 1}}},
		{"dmlrun_sent_bytes_total", dto.MetricType_COUNTER, []sample{{"peer=1", float64(sent)}}},
		{"dmlrun_received_bytes_total", dto.MetricType_COUNTER, []sample{{"peer=1", float64(recv)}}},
	} {
		mf := mfs[tc.name]
		if mf == nil {
			t.Errorf("%s: not exposed", tc.name)
			continue
		}
		if mf.GetType() != tc.typ || mf.GetHelp() == "" {
			t.Errorf("%s: type %v, help %q; want type %v and a help text", tc.name, mf.GetType(), mf.GetHelp(), tc.typ)
		}
		var got []sample
		for _, m := range mf.Metric {
			var ls []string
			for _, l := range m.Label {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			slices.Sort(ls)
			got = append(got, sample{strings.Join(ls, ","), value(m)})
		}
		slices.SortFunc(got, func(a, b sample) int { return strings.Compare(a.labels, b.labels) })
		if !slices.Equal(got, tc.samples) {
			t.Errorf("%s: samples %v, want %v", tc.name, got, tc.samples)
		}
	}
	if h := mfs["dmlrun_step_duration_seconds"].Metric[0].Histogram; h.Bucket[0].GetUpperBound() != 1e-5 || len(h.Bucket) != 21 {
		t.Errorf("step histogram buckets start at %v (%d of them, with +Inf), want 10 µs (21)", h.Bucket[0].GetUpperBound(), len(h.Bucket))
	}
	bi := mfs["dmlrun_build_info"]
	if bi == nil || len(bi.Metric) != 1 || value(bi.Metric[0]) != 1 {
		t.Fatalf("dmlrun_build_info: %v", bi)
	}
	var names []string
	for _, l := range bi.Metric[0].Label {
		if l.GetValue() != "" {
			names = append(names, l.GetName())
		}
	}
	if !slices.Equal(names, []string{"goversion", "version"}) {
		t.Errorf("dmlrun_build_info labels: %v", bi.Metric[0].Label)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if mfs[name] == nil {
			t.Errorf("%s: not exposed", name)
		}
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		if strings.HasPrefix(pr.Metric, "dmlrun_") {
			t.Errorf("promlint: %s: %s", pr.Metric, pr.Text)
		}
	}

	// A new ring: its bytes add to the old ring's, peer by peer, and the
	// gauges follow it.
	comms2 := elastictest.Comms(t, 3, elastictest.Config())
	allreduceOnce(t, comms2)
	for _, c := range comms {
		c.Close()
	}
	p.Ring(comms2[1], 9)
	mfs, _ = scrape(t, srv.URL)
	s1, r1, _ := comms2[1].Mesh().Traffic(0)
	s2, r2, _ := comms2[1].Mesh().Traffic(2)
	wantSent := map[string]float64{"0": float64(s1), "1": float64(sent), "2": float64(s2)}
	wantRecv := map[string]float64{"0": float64(r1), "1": float64(recv), "2": float64(r2)}
	for name, want := range map[string]map[string]float64{"dmlrun_sent_bytes_total": wantSent, "dmlrun_received_bytes_total": wantRecv} {
		got := map[string]float64{}
		for _, m := range mfs[name].Metric {
			got[m.Label[0].GetValue()] = value(m)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s after a second ring: %v, want %v", name, got, want)
		}
	}
	if w, r := value(mfs["dmlrun_world_size"].Metric[0]), value(mfs["dmlrun_rank"].Metric[0]); w != 3 || r != 1 {
		t.Errorf("after a second ring: world size %v, rank %v", w, r)
	}
}

// TestRecoveryReason maps each kind of ring failure to its label.
func TestRecoveryReason(t *testing.T) {
	for _, tc := range []struct {
		cause error
		want  string
	}{
		{elastic.RingFailure(elastic.ErrMemberJoined), "member_joined"},
		{elastic.RingFailure(fmt.Errorf("step 5: %w", context.DeadlineExceeded)), "timeout"},
		{elastic.RingFailure(fmt.Errorf("recv from rank 1: %w", transport.ErrFrameAuth)), "frame_auth"},
		{elastic.RingFailure(fmt.Errorf("recv from rank 1: %w", transport.ErrProtocol)), "protocol"},
		{elastic.RingFailure(fmt.Errorf("recv from rank 1: connection closed by peer: %w", io.ErrUnexpectedEOF)), "peer_lost"},
		{elastic.RingFailure(transport.ErrAborted), "peer_lost"},
	} {
		if got := recoveryReasons[recoveryReason(tc.cause)]; got != tc.want {
			t.Errorf("%v: reason %q, want %q", tc.cause, got, tc.want)
		}
	}
}

// TestStartPrometheus: the server serves /metrics at its address until
// stop, which frees the port; a port in use is an error naming it; no
// address serves nothing.
func TestStartPrometheus(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	p, stop, err := Start("", log)
	if p != nil || err != nil {
		t.Fatalf("no address: %v, %v", p, err)
	}
	stop()
	p.Step(1, time.Now(), 0, 1, 0) // nil: records nothing, and does not panic

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		addr string
		want []string
	}{
		{busy.Addr().String(), []string{"-metrics " + busy.Addr().String(), "already in use"}},
		{"127.0.0.1:99999", []string{"-metrics 127.0.0.1:99999", "invalid port"}},
		{"192.0.2.1:0", []string{"-metrics 192.0.2.1:0", "assign requested address"}},
	} {
		_, _, err := Start(tc.addr, log)
		if err == nil {
			t.Errorf("%s: no error", tc.addr)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.addr, err, w)
			}
		}
	}

	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	p, stop, err = Start(addr, log)
	if err != nil {
		t.Fatal(err)
	}
	p.Step(4, time.Now(), time.Millisecond, 8, 1.5)
	mfs, _ := scrape(t, "http://"+addr+"/metrics")
	if v := value(mfs["dmlrun_steps_total"].Metric[0]); v != 1 {
		t.Errorf("dmlrun_steps_total %v, want 1", v)
	}
	stop()
	ln, err := net.Listen("tcp", addr) // free again
	if err != nil {
		t.Fatalf("after stop, the port is still taken: %v", err)
	}
	ln.Close()
}

// BenchmarkPromStep is what the metrics add to a step (two histogram
// observations, two counters, three gauges and a clock read).
func BenchmarkPromStep(b *testing.B) {
	p := New()
	start := time.Now()
	b.ReportAllocs()
	for i := range b.N {
		p.Step(i, start, time.Millisecond, 32, 0.5)
	}
}
