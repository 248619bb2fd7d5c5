package launch

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"
)

// ProgressMode says how a job shows its progress.
type ProgressMode int

// Progress modes: Auto is Bar on a terminal and Plain elsewhere.
const (
	ProgressAuto  ProgressMode = iota
	ProgressBar                // a live bar, log lines printed above it
	ProgressPlain              // a plain line every 10 s and at every 10%
	ProgressNone               // no progress lines at all
)

// ParseProgressMode parses auto, bar, plain or none.
func ParseProgressMode(s string) (ProgressMode, error) {
	switch s {
	case "auto":
		return ProgressAuto, nil
	case "bar":
		return ProgressBar, nil
	case "plain":
		return ProgressPlain, nil
	case "none":
		return ProgressNone, nil
	}
	return 0, fmt.Errorf("-progress %q: want auto, bar, plain or none", s)
}

// IsTerminal reports whether w is a terminal that a bar can be drawn on
// (one that says how wide it is).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	return err == nil && ws.Col > 0
}

// Display is what a person watching a job sees: lines (from the launcher,
// or from a node with its label) and the progress of the run. Lines never
// tear the bar: they are printed above it. Safe for concurrent use.
type Display struct {
	mu    sync.Mutex
	w     io.Writer
	mode  ProgressMode
	track progressTracker

	// Bar mode only.
	p     *mpb.Progress
	bar   *mpb.Bar
	shown atomicText // the bar's text, read by its decorators

	// Plain mode only.
	lastPlain  time.Time
	lastDecile int
	closed     bool
}

// NewDisplay shows a job on w. Auto picks the bar when w is a terminal.
func NewDisplay(w io.Writer, mode ProgressMode) *Display {
	if mode == ProgressAuto {
		mode = ProgressPlain
		if IsTerminal(w) {
			mode = ProgressBar
		}
	}
	d := &Display{w: w, mode: mode, lastDecile: -1}
	d.shown.set("gathering nodes", "")
	if mode == ProgressBar {
		d.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(32), mpb.WithRefreshRate(200*time.Millisecond))
		d.bar = d.p.New(0, mpb.BarStyle(),
			mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { l, _ := d.shown.get(); return l })),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { _, r := d.shown.get(); return r })),
		)
	}
	return d
}

// Mode is the resolved mode (never Auto).
func (d *Display) Mode() ProgressMode { return d.mode }

// Printf prints one line (a newline is added).
func (d *Display) Printf(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	line := fmt.Sprintf(format, args...) + "\n"
	if d.p != nil && !d.closed {
		_, _ = d.p.Write([]byte(line))
		return
	}
	_, _ = io.WriteString(d.w, line)
}

// Write prints p, whole lines, above the bar: a Display is the launcher's
// io.Writer for lines of its own.
func (d *Display) Write(p []byte) (int, error) {
	d.Printf("%s", strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// Node shows a line a node sent (see NoticeHandler), with its label.
func (d *Display) Node(label string, l LogLine) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%s] ", l.Time.Local().Format("15:04:05"), label)
	if l.Level != "INFO" {
		b.WriteString(l.Level + " ")
	}
	b.WriteString(l.Msg)
	for _, a := range l.Attrs {
		if a.K == "node" { // the label already says which
			continue
		}
		v := a.V
		if strings.ContainsAny(v, " =\"") || v == "" {
			v = fmt.Sprintf("%q", v)
		}
		fmt.Fprintf(&b, " %s=%s", a.K, v)
	}
	d.Printf("%s", b.String())
}

// Phase shows what the job is doing before any node reports (e.g.
// "gathering nodes").
func (d *Display) Phase(phase string) {
	d.Update(Progress{Phase: phase})
}

// Update takes a node's progress report.
func (d *Display) Update(p Progress) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	now := time.Now()
	d.track.add(now, p)
	left, right := d.track.bar(now)
	switch d.mode {
	case ProgressBar:
		d.shown.set(left, right)
		if p.Steps > 0 {
			d.bar.SetTotal(int64(p.Steps), false)
			d.bar.SetCurrent(int64(p.Step))
		}
	case ProgressPlain:
		if p.Steps <= 0 || p.Phase != "training" && p.Unit == "" {
			return
		}
		decile := 10 * p.Step / p.Steps
		if decile > d.lastDecile || now.Sub(d.lastPlain) >= 10*time.Second {
			d.lastDecile, d.lastPlain = decile, now
			_, _ = io.WriteString(d.w, d.track.plain(now)+"\n")
		}
	}
}

// Close ends the bar (leaving its last state on screen) and flushes the
// lines printed above it. Lines printed after Close go straight to w.
func (d *Display) Close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	d.mu.Unlock()
	if d.p != nil {
		if d.bar.Current() > 0 && d.bar.Current() >= int64(d.track.last.Steps) {
			d.bar.SetTotal(-1, true) // complete: the bar stays as it was
		} else {
			d.bar.Abort(false)
		}
		d.p.Wait()
	}
}

// atomicText holds the bar's two texts.
type atomicText struct {
	mu          sync.Mutex
	left, right string
}

func (a *atomicText) set(l, r string) { a.mu.Lock(); a.left, a.right = l, r; a.mu.Unlock() }
func (a *atomicText) get() (string, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.left, a.right
}

// progressTracker turns progress reports into rates and an ETA.
type progressTracker struct {
	last     Progress
	at       time.Time
	rate     float64 // samples per second, smoothed
	stepRate float64 // steps per second, smoothed
}

func (t *progressTracker) add(now time.Time, p Progress) {
	if t.last.Phase == p.Phase && (p.Phase == "training" || p.Unit != "") && p.Step > t.last.Step {
		if dt := now.Sub(t.at).Seconds(); dt > 0 {
			sr := float64(p.Samples-t.last.Samples) / dt
			st := float64(p.Step-t.last.Step) / dt
			if t.stepRate == 0 {
				t.rate, t.stepRate = sr, st
			} else { // smoothed over about 5 reports
				t.rate += 0.2 * (sr - t.rate)
				t.stepRate += 0.2 * (st - t.stepRate)
			}
		}
	}
	if p.Step != t.last.Step || p.Phase != t.last.Phase || t.at.IsZero() {
		t.at = now
	}
	t.last = p
}

func (t *progressTracker) eta() string {
	p := t.last
	if t.stepRate <= 0 || p.Steps <= 0 {
		return "?"
	}
	s := float64(p.Steps-p.Step) / t.stepRate
	if math.IsInf(s, 0) || math.IsNaN(s) {
		return "?"
	}
	return (time.Duration(s) * time.Second).Round(time.Second).String()
}

func (t *progressTracker) lossText() string {
	if !t.last.HasLoss {
		return "-"
	}
	return fmt.Sprintf("%.4g", t.last.Loss)
}

// bar returns the texts left and right of the bar.
func (t *progressTracker) bar(time.Time) (string, string) {
	p := t.last
	if p.Steps <= 0 {
		return p.Phase, ""
	}
	if p.Unit != "" {
		return fmt.Sprintf("%s %s %d/%d", p.Phase, p.Unit, p.Step, p.Steps), fmt.Sprintf("%3d%% ETA %s world %d", 100*p.Step/p.Steps, t.eta(), p.World)
	}
	left := fmt.Sprintf("%s step %d/%d", p.Phase, p.Step, p.Steps)
	right := fmt.Sprintf("%3d%% epoch %d loss %s samples/s %.0f ETA %s world %d",
		100*p.Step/p.Steps, p.Epoch, t.lossText(), t.rate, t.eta(), p.World)
	return left, right
}

// plain is the line that plain mode prints.
func (t *progressTracker) plain(time.Time) string {
	p := t.last
	if p.Unit != "" {
		return fmt.Sprintf("%s %s %d/%d (%d%%) ETA %s world %d", p.Phase, p.Unit, p.Step, p.Steps, 100*p.Step/p.Steps, t.eta(), p.World)
	}
	return fmt.Sprintf("step %d/%d (%d%%) epoch %d loss %s samples/s %.0f ETA %s world %d",
		p.Step, p.Steps, 100*p.Step/p.Steps, p.Epoch, t.lossText(), t.rate, t.eta(), p.World)
}
