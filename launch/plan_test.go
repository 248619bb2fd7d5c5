package launch

import (
	"reflect"
	"testing"
)

func TestRemoteCommand(t *testing.T) {
	r := Remote{SSH: []string{"ssh", "-p", "2222"}, Self: "/usr/local/bin/dmlrun"}
	got := r.Command(Host{Name: "node1", Slots: 1}, []string{"node", "-bind", "0.0.0.0:7946", "/data/my train.yaml"})
	want := []string{"ssh", "-p", "2222", "-o", "BatchMode=yes", "-T", "node1",
		"exec /usr/local/bin/dmlrun node -bind 0.0.0.0:7946 '/data/my train.yaml'"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if got := r.Command(Host{Name: "localhost"}, []string{"node"}); !reflect.DeepEqual(got, []string{"/usr/local/bin/dmlrun", "node"}) {
		t.Fatalf("local entry: %q", got)
	}
	r.Bin = "/opt/dmlrun"
	if got := r.Command(Host{Name: "10.0.0.2"}, []string{"it's"}); got[len(got)-1] != `exec /opt/dmlrun 'it'\''s'` {
		t.Fatalf("quoting: %q", got[len(got)-1])
	}
}

func TestSlots(t *testing.T) {
	s := Slots([]Host{{"b", 2}, {"a", 1}, {"127.0.0.1", 1}})
	var labels []string
	for _, x := range s {
		labels = append(labels, x.Label()+" "+x.BindAddr(7946))
	}
	want := []string{"0@127.0.0.1 127.0.0.1:7946", "1@a 0.0.0.0:7946", "2@b 0.0.0.0:7946", "3@b 0.0.0.0:7947"}
	if !reflect.DeepEqual(labels, want) {
		t.Fatalf("got %q, want %q", labels, want)
	}
	if got := (Slot{Host: Host{Name: "::1"}, Slot: 1}).BindAddr(0); got != "[::1]:0" {
		t.Fatalf("ipv6: %s", got)
	}
	if got := (Slot{Host: Host{Name: "localhost"}}).BindAddr(9000); got != "127.0.0.1:9000" {
		t.Fatalf("localhost: %s", got)
	}
}
