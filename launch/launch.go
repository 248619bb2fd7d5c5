// Package launch starts and supervises the processes of one job: N local
// processes for `-np N`, or processes on the hosts of a hosts file over ssh.
// Training jobs (`dmlrun -np N`, `dmlrun bench train|data`) and benchmark
// sweeps (`dmlrun bench allreduce`) are started, introduced to each other,
// watched and stopped by the same code: one protocol, one state machine.
//
// Each child speaks a line protocol with the launcher: it reads JSON lines on
// its standard input and writes JSON lines on its standard output. Its
// standard error is the human log: every line is forwarded to the launcher's
// output with a "[label]" prefix (or to a log file). A child must exit when
// its standard input closes, so that a launcher that dies takes its children
// with it. The protocol, in order:
//
//	launcher -> child  NodeHello   host, slot, job size, the cluster secret (never
//	                               in an argument list), Extra: the program's payload
//	child -> launcher  NodeReport  {Gossip: addr}: where the others reach it
//	launcher -> child  JoinList    everyone's addresses, once all reported
//	child -> launcher  NodeReport  Log, Progress, Started, Part (streamed results),
//	                               Fault (its own failure), then its result
//	                               (Theta or Extra), the last line
//
// The launcher side is RunJob (the state machine: rendezvous, notices and
// progress, restarts, the failure summary naming the root cause), on top of
// Group (start, watch, signal, stop); the child side is Child, or Worker for
// a child whose hello carries a payload:
//
//	res, err := launch.RunJob(ctx, launch.Job{Specs: specs, Hellos: hellos, Display: d})
//
//	w, err := launch.Attach[Options](os.Stdin, os.Stdout)
//	addrs, err := w.Rendezvous(myAddr, cancel)
package launch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec is one process to start.
type Spec struct {
	Label string   // prefix of its forwarded log lines, e.g. "0" or "h2:1"
	Argv  []string // program and arguments
	Env   []string // extra environment, KEY=VALUE
	// Log, when set, receives every line of the child's standard error as
	// it is (no prefix): its full log, e.g. a file <output.dir>/logs/rank-N.log.
	Log io.Writer
}

// Event is a protocol line from a child, or the news that it exited.
type Event struct {
	Index  int             // position of the child in the specs
	Line   json.RawMessage // nil when the child exited
	Exited bool
	Err    error // exit status (nil for a clean exit) when Exited
	// Output is the decoded piece of a line that holds only an Output
	// piece (see Child.SendOutput); Line is nil then.
	Output []byte
}

// Group is a set of running children.
type Group struct {
	specs  []Spec
	cmds   []*exec.Cmd
	stdins []io.WriteCloser
	events chan Event
	wg     sync.WaitGroup
	outMu  sync.Mutex
	out    io.Writer

	mu       sync.Mutex
	lastErr  []string // per child: its last error line, or else its last line
	exited   []bool
	stopped  bool
	stopOnce sync.Once
}

// Start starts every spec. Children are put in their own process group, so a
// Ctrl-C at the terminal reaches only the launcher, which decides what to do.
// log receives every child's standard error, prefixed with its label.
func Start(ctx context.Context, specs []Spec, log io.Writer) (*Group, error) {
	g := &Group{specs: specs, events: make(chan Event, 64*len(specs)+16), out: log, exited: make([]bool, len(specs)), lastErr: make([]string, len(specs)),
		cmds: make([]*exec.Cmd, len(specs)), stdins: make([]io.WriteCloser, len(specs))}
	for i := range specs {
		if err := g.start(i); err != nil {
			g.Stop()
			return nil, err
		}
	}
	return g, nil
}

// start starts (or restarts) child i.
func (g *Group) start(i int) error {
	s := g.specs[i]
	cmd := exec.Command(s.Argv[0], s.Argv[1:]...)
	cmd.Env = append(cmd.Environ(), s.Env...)
	cmd.SysProcAttr = ProcAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.Label, err)
	}
	g.mu.Lock()
	g.cmds[i], g.stdins[i], g.exited[i] = cmd, stdin, false
	g.mu.Unlock()
	g.wg.Add(1)
	go g.watch(i, cmd, stdout, stderr)
	return nil
}

// Restart starts child i again after it exited.
func (g *Group) Restart(i int) error {
	g.mu.Lock()
	running := !g.exited[i]
	g.mu.Unlock()
	if running {
		return fmt.Errorf("restart %s: still running", g.specs[i].Label)
	}
	return g.start(i)
}

// maxShown bounds a line of a child's output that the launcher shows.
const maxShown = 64 << 10

// watch forwards one child's output and reports its exit.
func (g *Group) watch(i int, cmd *exec.Cmd, stdout, stderr io.Reader) {
	defer g.wg.Done()
	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() {
		defer pipes.Done()
		readLinesEnd(stdout, 16<<20, func(b []byte, cut int, ended bool) {
			if p, ok := outputPiece(b); ok && cut == 0 {
				g.events <- Event{Index: i, Output: p}
				return
			}
			if cut == 0 && json.Valid(b) {
				g.events <- Event{Index: i, Line: append(json.RawMessage(nil), b...)}
				return
			}
			if !ended && len(b) > 0 && b[0] == '{' {
				// A protocol line the child did not finish: it was killed
				// (or its link cut) while writing it. Its exit, which
				// follows, is what the launcher reports; the fragment is
				// not a message of its own.
				g.note(i, fmt.Sprintf("dmlrun: its last protocol line was cut off after %d bytes (the process stopped while writing it)", len(b)+cut))
				return
			}
			// Not protocol: show it.
			g.printf(i, "%s%s", b[:min(len(b), maxShown)], cutNote(cut+len(b)-min(len(b), maxShown)))
		})
	}()
	go func() {
		defer pipes.Done()
		readLines(stderr, maxShown, func(line []byte, cut int) {
			g.printf(i, "%s%s", line, cutNote(cut))
			if w := g.specs[i].Log; w != nil {
				g.outMu.Lock()
				fmt.Fprintf(w, "%s%s\n", line, cutNote(cut))
				g.outMu.Unlock()
			}
			g.noteLine(i, string(line))
		})
	}()
	pipes.Wait()
	err := cmd.Wait()
	g.mu.Lock()
	g.exited[i] = true
	g.mu.Unlock()
	g.events <- Event{Index: i, Exited: true, Err: err}
}

// note writes a line of the launcher's own about child i to its log file
// only (not the terminal, not its last error line).
func (g *Group) note(i int, line string) {
	if w := g.specs[i].Log; w != nil {
		g.outMu.Lock()
		fmt.Fprintln(w, line)
		g.outMu.Unlock()
	}
}

// noteLine keeps child i's last error line: the last slog line at level
// ERROR, the last "dmlrun: ..." line (a failed command's last word) or a Go
// panic's first line.
func (g *Group) noteLine(i int, line string) {
	if !strings.Contains(line, " level=ERROR ") && !strings.HasPrefix(line, "dmlrun: ") && !strings.HasPrefix(line, "panic: ") {
		return
	}
	g.mu.Lock()
	g.lastErr[i] = line
	g.mu.Unlock()
}

// LastError is child i's last error line (see noteLine), "" when it wrote
// none.
func (g *Group) LastError(i int) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lastErr[i]
}

func (g *Group) printf(i int, format string, args ...any) {
	g.outMu.Lock()
	defer g.outMu.Unlock()
	fmt.Fprintf(g.out, "[%s] "+format+"\n", append([]any{g.specs[i].Label}, args...)...)
}

// Len is the number of children.
func (g *Group) Len() int { return len(g.specs) }

// Label is child i's label.
func (g *Group) Label(i int) string { return g.specs[i].Label }

// Send writes v as one JSON line to child i's standard input.
func (g *Group) Send(i int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	g.mu.Lock()
	w := g.stdins[i]
	g.mu.Unlock()
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("send to %s: %w", g.specs[i].Label, err)
	}
	return nil
}

// Next returns the next event from any child, or ctx's error.
func (g *Group) Next(ctx context.Context) (Event, error) {
	select {
	case ev := <-g.events:
		return ev, nil
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

// Signal sends sig to every child still running: to its whole process
// group and its descendants (see KillGroup).
func (g *Group) Signal(sig syscall.Signal) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, cmd := range g.cmds {
		if cmd != nil && !g.exited[i] && cmd.Process != nil {
			_ = KillGroup(cmd.Process.Pid, sig)
		}
	}
}

// Stop ends the group: it closes every standard input (children exit on
// EOF), sends SIGTERM, then SIGKILL to whatever is left after grace, and waits
// for all of them. No child outlives Stop.
func (g *Group) Stop() {
	g.stopOnce.Do(func() {
		g.mu.Lock()
		g.stopped = true
		for _, w := range g.stdins {
			if w != nil {
				w.Close()
			}
		}
		g.mu.Unlock()
		done := make(chan struct{})
		go func() { g.wg.Wait(); close(done) }()
		select {
		case <-done:
			return
		case <-time.After(2 * time.Second):
		}
		g.Signal(syscall.SIGTERM)
		select {
		case <-done:
			return
		case <-time.After(3 * time.Second):
		}
		g.Signal(syscall.SIGKILL)
		<-done
	})
}

// ExitError describes a child that failed.
func ExitError(label string, err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Errorf("%s was killed by signal %d (%v)", label, int(ws.Signal()), ws.Signal())
		}
		return fmt.Errorf("%s exited with status %d", label, ee.ExitCode())
	}
	return fmt.Errorf("%s: %w", label, err)
}
