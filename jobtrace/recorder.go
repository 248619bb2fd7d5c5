package jobtrace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/ring"
	"github.com/dmlrun/dmlrun/timeline"
)

// Options configure this node's part of a job's timeline: a Chrome trace
// of its steps, allreduces, data loading and ring changes, on a clock
// aligned with the other nodes' (see AlignClocks), which the launcher
// merges with the other parts.
type Options struct {
	// Part is the file the node streams its events to; "" records nothing.
	// If it exists (a restarted node), the part goes beside it.
	Part string
	// PID is the node's process in the merged trace (the launcher gives
	// its launch index); negative means its rank in the first ring it is in.
	PID int
	// Steps caps the part: the node records the compute and collectives of
	// its first Steps steps (0: DefaultSteps), and ring changes,
	// data loads and clock alignments throughout, up to maxRingEvents.
	Steps int
}

// DefaultSteps is the step cap of a timeline part: 10,000 steps are
// 3 to 4 MB per node (three or four events a step, 100 bytes each).
const DefaultSteps = 10_000

// maxRingEvents caps the events that are not part of a step (failures,
// re-formed rings, data loads, clock alignments): a ring change records a
// handful.
const maxRingEvents = 10_000

// The lanes (trace threads) of a node's process.
const (
	laneCompute   = 1
	laneAllReduce = 2 // every collective, its phases nested inside
	laneData      = 3
	laneRecovery  = 4 // ring formations and recoveries
)

// flushEvery bounds how much a node killed outright loses: the events of its
// last flushEvery (or 64 KiB of them), written at the next step boundary.
const flushEvery = 10 * time.Millisecond

// Recorder writes this node's timeline part. Every method is safe on a nil
// Recorder (no timeline) and then costs one comparison. Only the node's
// own goroutine calls it: the step loop, the ring (as its Tracer) and
// the ring's changes.
type Recorder struct {
	w          *timeline.Writer
	opts       Options
	host       string
	slot       int
	log        *slog.Logger
	base       time.Time // the local clock: baseNs at base, plus base's monotonic time since
	baseNs     int64
	shift      int64 // trace time = local time - shift, once aligned
	aligned    bool
	quiet      bool // measuring clocks: the ring's spans are not recorded
	steps      int  // steps recorded
	other      int  // events recorded outside steps
	loads      int
	lastFlush  time.Time
	open       [4]time.Time // starts of the ring spans in progress
	depth      int
	failedAt   time.Time // start of the recovery in progress, zero if none
	growing    bool      // that "recovery" grows the ring for a joiner
	problemLog bool
}

// Start opens the part file of o (nil, nil without one) for the node in
// slot slot of host: a path that cannot be written fails the node before
// it joins the cluster.
func Start(o Options, host string, slot int, log *slog.Logger) (*Recorder, error) {
	if o.Part == "" {
		return nil, nil
	}
	w, err := timeline.Create(o.Part)
	if err != nil {
		return nil, err
	}
	if o.Steps <= 0 {
		o.Steps = DefaultSteps
	}
	now := time.Now()
	log.Info("timeline", "part", w.Path(), "steps", o.Steps)
	return &Recorder{w: w, opts: o, host: host, slot: slot, log: log, base: now, baseNs: now.UnixNano(), lastFlush: now}, nil
}

// local is t on this node's clock, in nanoseconds since the Unix epoch.
func (r *Recorder) local(t time.Time) int64 { return r.baseNs + int64(t.Sub(r.base)) }

// ts is t on the job's trace clock.
func (r *Recorder) ts(t time.Time) int64 { return r.local(t) - r.shift }

// Tracer is the Recorder as the ring's Tracer: nil without a timeline, so
// that the ring does not even call it.
func (r *Recorder) Tracer() ring.Tracer {
	if r == nil {
		return nil
	}
	return r
}

// recordingSteps says whether step events (compute, collectives) are
// recorded now.
func (r *Recorder) recordingSteps() bool {
	return r.aligned && !r.quiet && r.steps < r.opts.Steps
}

// ringEvent says whether one more event outside the steps may be recorded,
// and counts it.
func (r *Recorder) ringEvent() bool {
	if r == nil || !r.aligned || r.other >= maxRingEvents {
		return false
	}
	r.other++
	return true
}

// Begin is ring.Tracer's: a collective or a phase of one starts.
func (r *Recorder) Begin(ring.Span) {
	if r.depth < len(r.open) {
		r.open[r.depth] = time.Now()
	}
	r.depth++
}

// End is ring.Tracer's: the span begun last ends. It allocates nothing
// unless the collective failed.
func (r *Recorder) End(s ring.Span, seq uint64, err error) {
	r.depth--
	if r.depth < 0 || r.depth >= len(r.open) {
		r.depth = max(r.depth, 0)
		return
	}
	if !r.recordingSteps() {
		return
	}
	start := r.open[r.depth]
	e := r.w.Complete(laneAllReduce, s.String(), r.ts(start), int64(time.Since(start))).Int("seq", int64(seq))
	if err != nil {
		e = e.Str("error", err.Error())
	}
	e.Done()
}

// Step records the compute part of step n (1-based: the steps done after
// it), [t0, t1], and writes the events out every flushEvery.
func (r *Recorder) Step(n int, t0, t1 time.Time, rows int) {
	if r == nil || !r.recordingSteps() {
		return
	}
	r.steps++
	r.w.Complete(laneCompute, "compute", r.ts(t0), int64(t1.Sub(t0))).Int("step", int64(n)).Int("rows", int64(rows)).Done()
	if r.steps == r.opts.Steps {
		r.w.Instant(laneCompute, "timeline step cap reached", r.ts(t1)).Int("steps", int64(r.steps)).Done()
		r.flush()
		return
	}
	if r.w.Buffered() >= 64<<10 || t1.Sub(r.lastFlush) >= flushEvery {
		r.lastFlush = t1
		r.flush()
	}
}

// DataLoaded records a load of this node's rows (the first) or a re-shard
// (after a ring change), from start to end: read rows read, own of them kept.
func (r *Recorder) DataLoaded(start, end time.Time, read, own int) {
	if !r.ringEvent() {
		return
	}
	name := "load data"
	if r.loads > 0 {
		name = "re-shard"
	}
	r.loads++
	r.w.Complete(laneData, name, r.ts(start), int64(end.Sub(start))).
		Int("rows read", int64(read)).Int("own rows", int64(own)).Done()
}

// RingFailed records a failure of the ring (or a joiner to take in) after
// step, and the start of the recovery, and writes it out at once.
func (r *Recorder) RingFailed(at time.Time, cause error, step int) {
	if !r.ringEvent() {
		return
	}
	name := "ring failed"
	switch {
	case errors.Is(cause, elastic.ErrMemberJoined):
		name = "node joining"
	case errors.Is(cause, context.Canceled):
		name = "interrupted"
	}
	r.w.Instant(laneRecovery, name, r.ts(at)).Int("step", int64(step)).Str("cause", cause.Error()).Done()
	if r.failedAt.IsZero() {
		r.failedAt, r.growing = at, errors.Is(cause, elastic.ErrMemberJoined)
	}
	r.flush()
}

// RingReformed records one re-formation of the ring, from the failure
// (from) to a ring that agreed on the step and re-sharded the rows.
func (r *Recorder) RingReformed(from time.Time, rank, size, step int) {
	if !r.ringEvent() {
		return
	}
	r.w.Complete(laneRecovery, "re-form ring", r.ts(from), int64(time.Since(from))).
		Int("rank", int64(rank)).Int("size", int64(size)).Int("resume at step", int64(step)).Done()
}

// Recovered records the whole recovery, from the failure to the first step
// the new ring completed (step), and writes it out.
func (r *Recorder) Recovered(step, size int) {
	if r == nil || r.failedAt.IsZero() {
		return
	}
	if r.ringEvent() {
		r.w.Complete(laneRecovery, r.recoveryName(), r.ts(r.failedAt), int64(time.Since(r.failedAt))).
			Int("first step", int64(step)).Int("size", int64(size)).Done()
	}
	r.failedAt = time.Time{}
	r.flush()
}

func (r *Recorder) recoveryName() string {
	if r.growing {
		return "grow ring"
	}
	return "recovery"
}

// flush writes the buffered events; a write error is logged once and the
// timeline goes on without them.
func (r *Recorder) flush() {
	if err := r.w.Flush(); err != nil && !r.problemLog {
		r.problemLog = true
		r.log.Warn("timeline: events lost", "err", err)
	}
}

// Close records a recovery still in progress and, after a failure, the
// error this node exits with, and closes the part.
func (r *Recorder) Close(err error) {
	if r == nil {
		return
	}
	now := time.Now()
	if !r.failedAt.IsZero() && r.ringEvent() {
		r.w.Complete(laneRecovery, r.recoveryName()+" (unfinished)", r.ts(r.failedAt), int64(now.Sub(r.failedAt))).Done()
	}
	if err != nil && r.ringEvent() {
		r.w.Instant(laneRecovery, "exit", r.ts(now)).Str("error", err.Error()).Done()
	}
	if cerr := r.w.Close(); cerr != nil && !r.problemLog {
		r.log.Warn("timeline: events lost", "err", cerr)
	}
}

// Recording is 1 if this node records a timeline, 0 otherwise: its vote,
// in a Max allreduce, on whether a new ring runs AlignClocks.
func (r *Recorder) Recording() float64 {
	if r == nil {
		return 0
	}
	return 1
}

// Path is the part's file ("" without a timeline).
func (r *Recorder) Path() string {
	if r == nil {
		return ""
	}
	return r.w.Path()
}

// clock returns this node's clock reading for AlignClocks, and its shift
// if an earlier ring aligned it (known), or else where its trace would
// begin: when it opened its part (now, without a timeline).
func (r *Recorder) clock() (now, shift int64, known bool) {
	if r == nil {
		now := time.Now().UnixNano()
		return now, now, false
	}
	if !r.aligned {
		return r.local(time.Now()), r.baseNs, false
	}
	return r.local(time.Now()), r.shift, true
}

// setQuiet stops recording the ring's spans while clocks are measured.
func (r *Recorder) setQuiet(q bool) {
	if r != nil {
		r.quiet = q
	}
}

// setClock takes the shift AlignClocks measured (offset: this node's clock
// minus the anchor's) and records the alignment, which took from start to
// now. The first one also names this node's process and lanes.
func (r *Recorder) setClock(shift, offset int64, anchor int, c *elastic.Comm, start time.Time) {
	if r == nil {
		return
	}
	r.shift = shift
	if !r.aligned {
		r.aligned = true
		pid := r.opts.PID
		if pid < 0 {
			pid = c.Rank()
		}
		r.w.SetPID(pid)
		r.w.Meta(0, "process_name").Str("name", fmt.Sprintf("rank %d (host %s, slot %d)", c.Rank(), r.host, r.slot)).Done()
		r.w.Meta(0, "process_sort_index").Int("sort_index", int64(pid)).Done()
		for _, l := range []struct {
			tid  int
			name string
		}{{laneCompute, "compute"}, {laneAllReduce, "allreduce"}, {laneData, "data loading"}, {laneRecovery, "recovery"}} {
			r.w.Meta(l.tid, "thread_name").Str("name", l.name).Done()
			r.w.Meta(l.tid, "thread_sort_index").Int("sort_index", int64(l.tid)).Done()
		}
	}
	if r.ringEvent() {
		r.w.Complete(laneRecovery, "align clocks", r.ts(start), int64(time.Since(start))).
			Int("rank", int64(c.Rank())).Int("size", int64(c.Size())).Int("anchor rank", int64(anchor)).
			Float("offset us", float64(offset)/1e3).Done()
	}
	r.log.Debug("timeline clock aligned", "rank", c.Rank(), "anchor", anchor, "offset", time.Duration(offset))
	r.flush()
}
