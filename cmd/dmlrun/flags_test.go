package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dmlrun/dmlrun/launch"
)

func TestParseBenchAllReduce(t *testing.T) {
	good, _, err := parseBenchAllReduce([]string{"-np", "3", "-min-bytes", "1K", "-max-bytes", "16M", "-dtype", "float64", "-op", "max", "-algo", "rd", "-json", "x.json"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if good.NP != 3 || good.MinBytes != 1024 || good.MaxBytes != 16<<20 || good.DType != "float64" || good.Op != "max" || good.Algorithm != "rd" {
		t.Fatalf("parsed %+v", good)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-np", "0"}, "-np 0"},
		{[]string{"-np", "x"}, "invalid value"},
		{[]string{"-dtype", "int8"}, `-dtype "int8"`},
		{[]string{"-op", "avg"}, `"avg"`},
		{[]string{"-algo", "tree"}, `"tree"`},
		{[]string{"-min-bytes", "12Q"}, `bad size "12Q"`},
		{[]string{"-min-bytes", "1M", "-max-bytes", "1K"}, "below -min-bytes"},
		{[]string{"-factor", "1"}, "-factor 1"},
		{[]string{"-iters", "0"}, "-iters 0"},
		{[]string{"-timeout", "-1s"}, "-timeout"},
		{[]string{"-bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		_, _, err := parseBenchAllReduce(tc.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
}

func TestRunUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "no command"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"bench"}, 2, "needs a benchmark"},
		{[]string{"bench", "latency"}, 2, `unknown benchmark "latency"`},
		{[]string{"bench", "allreduce", "-np", "-3"}, 2, "-np -3"},
		{[]string{"help"}, 0, ""},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, strings.NewReader(""), &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
	}
	if !errors.Is(usageErr(errors.New("x")), errUsage) {
		t.Error("usageErr does not wrap errUsage")
	}
}

func TestParseLaunch(t *testing.T) {
	f, err := parseLaunch([]string{"-hosts", "h.txt", "-ssh", "ssh -p 2222", "-remote-bin", "/opt/dmlrun", "-port", "9000", "-iface", "eth1", "train.yaml"}, &bytes.Buffer{})
	if err != nil || f.hostsFile != "h.txt" || f.ssh != "ssh -p 2222" || f.remoteBin != "/opt/dmlrun" || f.port != 9000 || f.iface != "eth1" || f.config != "train.yaml" {
		t.Fatalf("%+v, %v", f, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"train.yaml"}, "exactly one of -np N, -hosts FILE or -H LIST"},
		{[]string{"-np", "2", "-H", "a:2"}, "exactly one"},
		{[]string{"-np", "-1"}, "-np -1"},
		{[]string{"-np", "300"}, "-np 300"},
		{[]string{"-H", "a", "-port", "70000"}, "-port 70000"},
		{[]string{"-H", "a", "-ssh", " "}, "-ssh is empty"},
		{[]string{"-np", "2", "a.yaml", "b.yaml"}, "one train.yaml expected"},
		{[]string{"-np", "2", "-metrics-port", "-1"}, "-metrics-port -1: want 1 to 65535"},
		{[]string{"-np", "2", "-metrics-port", "65536"}, "-metrics-port 65536"},
	} {
		if _, err := parseLaunch(tc.args, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestCheckMetricsPorts: every slot's metrics port (P+slot) must exist and
// stay clear of the gossip ports (-port+slot).
func TestCheckMetricsPorts(t *testing.T) {
	hosts := func(slots ...int) []launch.Host {
		var hs []launch.Host
		for i, n := range slots {
			hs = append(hs, launch.Host{Name: fmt.Sprint("h", i), Slots: n})
		}
		return hs
	}
	for _, tc := range []struct {
		base, gossip int
		hosts        []launch.Host
		want         string // "" = no error
	}{
		{0, 7946, hosts(4), ""},
		{9100, 0, hosts(3), ""},
		{9100, 7946, hosts(2, 4), ""},
		{65533, 0, hosts(3), ""},
		{65534, 0, hosts(1, 3), "-metrics-port 65534: a host with 3 slots needs ports 65534 to 65536, beyond 65535: choose a port of at most 65533"},
		{7948, 7946, hosts(4), "-metrics-port 7948: ports 7948 to 7951 overlap the gossip ports of -port 7946 (7946 to 7949)"},
		{7943, 7946, hosts(4), "overlap"},
		{7942, 7946, hosts(4), ""},
		{7950, 7946, hosts(4), ""},
	} {
		err := checkMetricsPorts(tc.base, tc.gossip, tc.hosts)
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("-metrics-port %d, -port %d, %v: error %v, want %q", tc.base, tc.gossip, tc.hosts, err, tc.want)
		}
	}
}

func TestParseNodeMetrics(t *testing.T) {
	for _, tc := range []struct {
		arg, want string // want: the error ("" = none)
	}{
		{"127.0.0.1:9100", ""},
		{":9100", ""},
		{"[::1]:0", ""},
		{"127.0.0.1", `-metrics "127.0.0.1": want host:port`},
		{"127.0.0.1:http", `port "http": want 0 to 65535`},
		{"127.0.0.1:70000", `port "70000"`},
	} {
		f, err := parseNode([]string{"-metrics", tc.arg}, &bytes.Buffer{})
		switch {
		case tc.want == "" && (err != nil || f.metrics != tc.arg):
			t.Errorf("-metrics %s: %+v, %v", tc.arg, f, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("-metrics %s: error %v, want %q", tc.arg, err, tc.want)
		}
	}
}
