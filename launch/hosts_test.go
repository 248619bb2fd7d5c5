package launch

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseHosts(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []Host
		err        string
	}{
		{"openmpi format", "node1 slots=2\nnode2 slots=4 max_slots=8\n", []Host{{"node1", 2}, {"node2", 4}}, ""},
		{"colon format", "node1:2\n10.0.0.2:3\n", []Host{{"node1", 2}, {"10.0.0.2", 3}}, ""},
		{"bare host", "node1\n", []Host{{"node1", 1}}, ""},
		{"comments and blanks", "# cluster\n\nnode1:2 # big one\n   \n  node2\n", []Host{{"node1", 2}, {"node2", 1}}, ""},
		{"ipv6", "[fe80::1]:2\n[::1] slots=3\n[2001:db8::5]\n", []Host{{"fe80::1", 2}, {"::1", 3}, {"2001:db8::5", 1}}, ""},
		{"bad slots", "a\nnode1 slots=x\n", nil, "hosts.txt:2: slot count \"x\""},
		{"zero slots", "node1:0\n", nil, "hosts.txt:1: slot count \"0\""},
		{"too many slots", "node1:5000\n", nil, "from 1 to 1024"},
		{"unknown key", "node1 cpus=4\n", nil, `hosts.txt:1: unknown key "cpus"`},
		{"not key=value", "node1 4\n", nil, `hosts.txt:1: "4": want key=value`},
		{"slots twice", "node1:2 slots=3\n", nil, "slots given twice"},
		{"bare ipv6", "fe80::1\n", nil, "put IPv6 addresses in brackets"},
		{"unclosed bracket", "[fe80::1:2\n", nil, "missing ]"},
		{"not ipv6 in brackets", "[node1]:2\n", nil, "is not an IPv6 address"},
		{"junk after bracket", "[::1]x\n", nil, "unexpected"},
		{"missing count", "node1:\n", nil, "no slot count"},
		{"bad character", "no!de\n", nil, "has the character"},
		{"duplicate", "a:1\nb\na:2\n", nil, "hosts.txt:3: host a is already listed on line 1"},
		{"empty", "# nothing\n\n", nil, "hosts.txt: no hosts listed"},
	} {
		got, err := ParseHosts(strings.NewReader(tc.text), "hosts.txt")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: got %v, %v; want error containing %q", tc.name, got, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}

func TestParseHostList(t *testing.T) {
	got, err := ParseHostList("h1:2,h2:2,h3,[::1]:4")
	want := []Host{{"h1", 2}, {"h2", 2}, {"h3", 1}, {"::1", 4}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, %v", got, err)
	}
	for in, msg := range map[string]string{"h1,,h2": "entry 2 is empty", "h1:x": `slot count "x"`, "a,a:2": "listed twice", "": "entry 1 is empty"} {
		if _, err := ParseHostList(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: got %v, want %q", in, err, msg)
		}
	}
}

func TestParseHostfileMissing(t *testing.T) {
	if _, err := ParseHostfile("/nonexistent/hosts.txt"); err == nil || !strings.Contains(err.Error(), "/nonexistent/hosts.txt") {
		t.Fatalf("got %v", err)
	}
}

func TestIsLocal(t *testing.T) {
	for name, want := range map[string]bool{"localhost": true, "127.0.0.1": true, "127.0.0.2": true, "::1": true, "node1": false, "10.0.0.1": false} {
		if got := (Host{Name: name}).IsLocal(); got != want {
			t.Errorf("%s: IsLocal = %v", name, got)
		}
	}
}
