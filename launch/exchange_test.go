package launch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// TestHelperChild is not a test: it is the child process of the tests
// below when LAUNCH_TEST_CHILD is set.
func TestHelperChild(t *testing.T) {
	if os.Getenv("LAUNCH_TEST_CHILD") != "exchange" {
		t.Skip("a helper process")
	}
	c := NewChild(os.Stdin, os.Stdout)
	var h NodeHello
	if err := c.Recv(&h); err != nil {
		os.Exit(2)
	}
	ctx := context.Background()
	v := []float64{float64(h.Slot + 1), 10}
	if err := c.Exchange(ctx, v); err != nil {
		os.Exit(3)
	}
	empty := []float64{}
	if err := c.Exchange(ctx, empty); err != nil { // an empty round still completes
		os.Exit(4)
	}
	_ = c.Send(NodeReport{Output: fmt.Sprintf("slot %d saw %v\n", h.Slot, v)})
	_ = c.Send(NodeReport{Rank: h.Slot, Extra: "done"})
	os.Exit(0)
}

// TestExchangeAndOutput: the launcher sums each exchange round over every
// node and sends every node the sum; each node's Output pieces reach its
// writer.
func TestExchangeAndOutput(t *testing.T) {
	const n = 3
	specs := make([]Spec, n)
	hellos := make([]NodeHello, n)
	outs := make([]*bytes.Buffer, n)
	writers := make([]io.Writer, n)
	for i := range specs {
		specs[i] = Spec{Label: fmt.Sprint(i), Argv: []string{os.Args[0], "-test.run=^TestHelperChild$"}, Env: []string{"LAUNCH_TEST_CHILD=exchange"}}
		hellos[i] = NodeHello{Slot: i, Nodes: n}
		outs[i] = new(bytes.Buffer)
		writers[i] = outs[i]
	}
	var shown bytes.Buffer
	d := NewDisplay(&shown, ProgressNone)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := RunJob(ctx, Job{Specs: specs, Hellos: hellos, Out: &shown, Display: d, Output: writers})
	if err != nil {
		t.Fatalf("%v\n%s", err, shown.String())
	}
	if len(res.Reports) != n {
		t.Fatalf("%d reports", len(res.Reports))
	}
	for i, o := range outs {
		if want := fmt.Sprintf("slot %d saw [6 30]\n", i); o.String() != want {
			t.Errorf("node %d's output %q, want %q", i, o.String(), want)
		}
	}
}

// TestTornLastLineIsDeath: a node killed in the middle of a protocol line
// (its output ends without a newline) is reported as killed; the fragment
// is neither shown nor taken for a message.
func TestTornLastLineIsDeath(t *testing.T) {
	var logFile bytes.Buffer
	specs := []Spec{{Label: "0", Log: &logFile, Argv: []string{"sh", "-c", `read x; printf '%s\n' '{"output":"1\n"}'; printf '%s' '{"output":"2\n3'; kill -9 $$`}}}
	var out bytes.Buffer
	var shown bytes.Buffer
	d := NewDisplay(&shown, ProgressNone)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := RunJob(ctx, Job{Specs: specs, Hellos: make([]NodeHello, 1), Out: &shown, Display: d, Output: []io.Writer{&out}})
	var je *JobError
	if !errors.As(err, &je) || je.Code != 137 || !strings.Contains(je.Root, "node 0 (host ) was killed by signal 9") {
		t.Fatalf("error %v, want node 0 killed by signal 9 (status 137)", err)
	}
	if strings.Contains(shown.String(), `{"output`) || strings.Contains(err.Error(), "JSON") {
		t.Fatalf("the torn line was shown:\n%s\n%v", shown.String(), err)
	}
	if out.String() != "1\n" {
		t.Fatalf("output %q, want the one whole piece", out.String())
	}
	if !strings.Contains(logFile.String(), "cut off after 15 bytes") {
		t.Fatalf("the node's log does not note the torn line:\n%s", logFile.String())
	}
}

// TestOutputPiece: SendOutput's lines decode, by the launcher's fast path,
// to what was sent, and mean what encoding/json says they mean; lines of
// any other shape are left to the JSON decoder.
func TestOutputPiece(t *testing.T) {
	for _, s := range []string{"0.5\n", "1,2,3\n-4e-05\n", "", "a\"b\\c\td\re/\n", "\x01\x1f", "héllo ✓\n"} {
		var buf bytes.Buffer
		if err := NewChild(strings.NewReader(""), &buf).SendOutput([]byte(s)); err != nil {
			t.Fatal(err)
		}
		line := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		var rep NodeReport
		if err := json.Unmarshal(line, &rep); err != nil || rep.Output != s {
			t.Fatalf("%q: line %s decodes to %q (%v)", s, line, rep.Output, err)
		}
		got, ok := outputPiece(line)
		if strings.ContainsAny(s, "\x01\x1f") { // \u escapes: the general decoder's
			if ok {
				t.Fatalf("%q: the fast path took %s", s, line)
			}
			continue
		}
		if !ok || string(got) != s {
			t.Fatalf("%q: fast path %q %v", s, got, ok)
		}
	}
	for _, line := range []string{`{"output":"a","rank":1}`, `{"output":"a\"}`, `{"output":"a\u0041"}`, `{"rank":1}`, `{"output":"a"b"}`} {
		if _, ok := outputPiece([]byte(line)); ok {
			t.Errorf("%s taken by the fast path", line)
		}
	}
}
