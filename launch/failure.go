package launch

import (
	"cmp"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// nodeID says which node a message is about.
type nodeID struct {
	Noun  string // "node", or "rank" for a benchmark
	Label string
	Host  string
	Rank  int // -1 before it was in a ring
}

func (n nodeID) String() string {
	noun := cmp.Or(n.Noun, "node")
	if n.Rank < 0 {
		return fmt.Sprintf("%s %s (host %s)", noun, n.Label, n.Host)
	}
	return fmt.Sprintf("%s %s (host %s, rank %d)", noun, n.Label, n.Host, n.Rank)
}

// failure is one node's failure: an exit with an error, or a fault it
// reported before exiting.
type failure struct {
	node  nodeID
	at    time.Time
	exit  error  // its exit status, when it exited
	fault string // the fault it reported, if any
	last  string // its last error line
	note  string // what the launcher makes of it
	lost  bool   // lost during training: the others went on
}

// status is the exit status the launcher takes from f: the node's own, or
// 128+signal for a signal (as a shell and torchrun do).
func (f failure) status() int {
	var ee *exec.ExitError
	if errors.As(f.exit, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		if c := ee.ExitCode(); c > 0 {
			return c
		}
	}
	return 1
}

func (f failure) String() string {
	var b strings.Builder
	b.WriteString(f.node.String())
	switch {
	case f.fault != "":
		b.WriteString(" failed: " + f.fault)
	case f.exit != nil:
		b.WriteString(" " + strings.TrimPrefix(strings.TrimSpace(ExitError("", f.exit).Error()), ": "))
	}
	fmt.Fprintf(&b, " at %s", f.at.Format("15:04:05.000"))
	if f.note != "" {
		b.WriteString(": " + f.note)
	}
	if f.last != "" && f.last != f.fault {
		b.WriteString("\n    its last error: " + f.last)
	}
	return b.String()
}

// failures collects a job's failures in the order they happened.
type failures struct {
	list []failure
}

// add records f and reports whether it is the first failure that is not a
// lost node (the one that stops the job). Later exits of nodes that the
// launcher stops because of it are not recorded.
func (fs *failures) add(f failure) bool {
	if f.at.IsZero() {
		f.at = time.Now()
	}
	if fs.failed() {
		if f.fault != "" { // a node's own fault is the cause even when a peer's failure came first
			fs.list = append(fs.list, f)
		}
		return false
	}
	fs.list = append(fs.list, f)
	return !f.lost
}

// failed reports whether a failure (not a lost node) stopped the job.
func (fs *failures) failed() bool {
	return slices.ContainsFunc(fs.list, func(f failure) bool { return !f.lost })
}

// jobError is the job's error: nil unless a failure stopped it, or, with
// allLost, every node was lost.
func (fs *failures) jobError(allLost bool) error {
	if len(fs.list) == 0 || !fs.failed() && !allLost {
		return nil
	}
	root := 0 // a node's own fault first: it is the cause, not a symptom
	if i := slices.IndexFunc(fs.list, func(f failure) bool { return f.fault != "" }); i >= 0 {
		root = i
	}
	e := &JobError{Root: fs.list[root].String(), Code: fs.list[root].status()}
	for i, f := range fs.list {
		if i != root {
			e.Others = append(e.Others, f.String())
		}
	}
	return e
}

// JobError is a failed job: the root cause first (the first fault a node
// reported, or else the first node that failed or was lost), then the
// other failures. Code is the exit status the launcher should end with: the
// root-cause node's own, or 128+signal.
type JobError struct {
	Root   string
	Others []string
	Code   int
}

func (e *JobError) Error() string {
	s := "job failed; root cause: " + e.Root
	for _, o := range e.Others {
		s += "\n  then: " + o
	}
	return s
}
