package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/jobprogress"
	"github.com/dmlrun/dmlrun/jobtrace"
	"github.com/dmlrun/dmlrun/ring"
)

// The trainer is an elastic.State and hears the Group's ring changes
// (elastic.Events): the Group forms the rings, agrees on the step, sends θ
// and the optimizer state to the members behind (Encode, Decode) and calls
// Resize on every new ring, where the trainer takes its rows.
var (
	_ elastic.State  = (*trainer)(nil)
	_ elastic.Events = (*trainer)(nil)
)

// errNewMember is in the cause of a ring left to let a node in.
var errNewMember = elastic.ErrMemberJoined

// IsPeerFailure reports whether err is a failure of the ring (a peer died,
// stalled or closed its connections) rather than a fault of this node: a
// launcher then looks for the cause on the other nodes.
func IsPeerFailure(err error) bool { return elastic.IsRingFailure(err) }

// Step is how many steps θ holds: -1 for a node that resumes without a
// checkpoint of its own (it takes the ring's).
func (t *trainer) Step() int { return t.done }

// Encode is the state a member behind receives: a checkpoint (θ, optimizer
// and stopping state of every candidate, and the data's shape).
func (t *trainer) Encode() ([]byte, error) { return t.snapshot() }

// Decode takes another member's state at step (see Encode).
func (t *trainer) Decode(step int, b []byte) error {
	ck, err := decodeCheckpoint(b, t.cfg.Digest())
	if err != nil {
		return err
	}
	if err := t.restore(ck, false); err != nil {
		return err
	}
	t.done = step
	return nil
}

// RingFormed is told of each ring this node is in, before Resize.
func (t *trainer) RingFormed(r elastic.Ring) { t.ring = r }

// RingLeft is told when the ring this node stepped in failed, or was left
// to let a node in: the recovery (or the growth) starts here.
func (t *trainer) RingLeft(step int, cause error) {
	now := time.Now()
	if t.failedAt.IsZero() { // a recovery cut short by another failure counts from the first
		t.failedAt = now
	}
	t.left = cause
	t.tl.RingFailed(now, cause, step)
	t.progress.SetPhase(jobprogress.PhaseRecovering)
	if errors.Is(cause, errNewMember) {
		t.log.Debug("a node joined: re-forming the ring", "step", step)
	} else {
		t.log.Warn("ring failed: re-forming", "cause", cause, "step", step)
	}
}

// Resize is called on every ring once its members hold the same state: the
// node takes the rows of its shards (the job's first ring also agrees on the
// data's shape: classes, standardization, class counts), the new rank 0
// takes metrics.csv, and the ring change is logged.
func (t *trainer) Resize(ctx context.Context, c *elastic.Comm) error {
	t.c = c
	if t.name != nil {
		t.log = t.base.With("node", t.name(), "rank", c.Rank())
	} else {
		t.log = t.base.With("rank", c.Rank())
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Cluster.Timeout.Duration)
	defer cancel()
	if err := t.shape(ctx); err != nil {
		return err
	}
	if t.cands == nil {
		if err := t.build(); err != nil {
			return err
		}
	}
	if t.fresh {
		// No node starts training (and so none counts as lost later)
		// before every node has read its rows: one that cannot fails the
		// start.
		if err := c.Barrier(ctx); err != nil {
			return fmt.Errorf("waiting for every node to load its data (did another node fail? see its lines): %w", err)
		}
	}
	t.buildValidation()
	t.tl.DataLoaded(t.data.loadStart, t.data.loadEnd, t.data.read, t.data.train.Len())
	if t.metrics != nil && c.Rank() != 0 { // metrics.csv goes to the new rank 0
		t.metrics.Close()
		t.metrics = nil
	}
	if err := t.openMetrics(t.prev != nil || t.resume); err != nil {
		return err
	}
	t.progress.SetRing(c.Rank(), c.Size())
	t.prom.Ring(c, c.Epoch())
	t.logRing()
	t.prev, t.left, t.fresh = c.Members(), nil, false
	return nil
}

// shape gives this node the data of the new ring: when no member knows the
// data's shape yet (the job's first ring), the members open the data sets
// together and agree on it; when some do (a node that joined before the
// first step), the lowest rank of those sends it; then every node drops the
// shards it no longer owns and reads the new ones. The same allreduce says
// whether any member records a timeline (then all align their clocks) and
// whether any was in an earlier ring (then all evaluate after the next
// step, a joiner too, so that their collectives stay in step).
func (t *trainer) shape(ctx context.Context) error {
	c := t.c
	has := 0.0
	if t.data != nil && t.data.shaped {
		has = 1
	}
	root := float64(c.Size())
	if has == 1 {
		root = float64(c.Rank())
	}
	changed := 0.0
	if t.prev != nil {
		changed = 1
	}
	v := []float64{t.tl.Recording(), has, -has, -root, changed}
	if err := c.AllReduce(ctx, ring.Max, v); err != nil {
		return fmt.Errorf("agreeing on the ring: %w", err)
	}
	if v[0] > 0 {
		if err := jobtrace.AlignClocks(ctx, c, t.tl); err != nil {
			return err
		}
	}
	t.fresh = v[1] == 0
	t.evalNext = t.evalNext || v[4] > 0 // metrics.csv shows the new world size from here
	if !t.fresh && -v[2] == 0 {         // some have it, some do not
		if err := t.shareDataShape(ctx, int(-v[3])); err != nil {
			return err
		}
	}
	if t.data == nil || t.data.trainSrc == nil {
		together := c // a first ring indexes the data sets together
		if !t.fresh {
			together = nil
		}
		if err := t.openData(ctx, together); err != nil {
			return err
		}
	}
	if t.fresh {
		t.progress.SetPhase(jobprogress.PhaseLoading)
	}
	return loadData(ctx, c, t.cfg, t.data, t.fresh)
}

// shareDataShape broadcasts from root what every node must agree on about
// the data: the number of classes, the standardization statistics and the
// class counts (imbalance.go).
func (t *trainer) shareDataShape(ctx context.Context, root int) error {
	c := t.c
	if t.data == nil {
		t.data = &nodeData{task: taskOf(t.cfg)}
	}
	d := t.data
	n := []float64{float64(d.rows), float64(d.features)}
	if err := c.Broadcast(ctx, root, n); err != nil {
		return err
	}
	d.rows, d.features = int(n[0]), int(n[1])
	f := d.features
	buf := make([]float64, 2+2*f)
	if c.Rank() == root {
		buf[0] = float64(d.classes)
		if d.mean != nil {
			buf[1] = 1
			copy(buf[2:], d.mean)
			copy(buf[2+f:], d.std)
		}
	}
	if err := c.Broadcast(ctx, root, buf); err != nil {
		return err
	}
	d.classes = int(buf[0])
	if buf[1] == 1 {
		d.mean, d.std = buf[2:2+f], buf[2+f:]
	}
	if err := t.shareClassCounts(ctx, root); err != nil {
		return err
	}
	d.shaped = true
	return nil
}

// logRing says what the new ring is: the job's first, one this node joined
// or resumed in, or one re-formed after a failure or to let a node in
// (with the nodes lost and joined).
func (t *trainer) logRing() {
	c, ms := t.c, t.c.Members()
	lead := c.Rank() == 0
	level := t.log.Debug
	if lead {
		level = t.log.Info // once per ring change, by the new ring's rank 0
	}
	behind := slices.Contains(t.ring.Behind, c.Rank())
	switch {
	case t.prev == nil && behind && !t.resume:
		t.log.Info("joined the ring", "size", len(ms), "ring", ringString(ms), "at step", t.done, Notice)
	case t.prev == nil:
		if lead && t.resume {
			t.log.Info("resumed from checkpoint", "step", t.done, "path", t.checkpointPath(), Notice)
		}
		t.log.Info("ring formed", "size", len(ms), "ring", ringString(ms), "frames", c.Protection(), noticeIf(lead))
	default:
		t.log.Info("rows read for the new ring", "rows", t.data.read, "own rows", t.data.train.Len(), "took", t.data.readTook.Round(time.Millisecond))
		lost, joined := missing(t.prev, ms), missing(ms, t.prev)
		cause := t.left
		if cause == nil {
			cause = errors.New("the ring's set-up failed")
		}
		msg := "ring recovered"
		if errors.Is(cause, errNewMember) && lost == "" {
			msg = "ring re-formed"
		} else {
			t.recoveries++
		}
		t.prom.Recovered(cause)
		level(msg, "lost", lost, "joined", joined, "cause", cause, "decided by", fmt.Sprintf("consensus of %d survivors", len(ms)),
			"ring", ringString(ms), "epoch", c.Epoch(), "resume at step", t.done, "pause", time.Since(t.failedAt).Round(time.Millisecond), noticeIf(lead))
		t.tl.RingReformed(t.failedAt, c.Rank(), c.Size(), t.done)
	}
}

func ringString(ms []elastic.Member) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.Host + "/" + strconv.Itoa(m.Slot)
	}
	return strings.Join(s, " -> ")
}

// missing lists the members of old that are not in now.
func missing(old, now []elastic.Member) string {
	var out []string
	for _, m := range old {
		if !slices.ContainsFunc(now, func(x elastic.Member) bool { return x.Name == m.Name }) {
			out = append(out, m.String())
		}
	}
	return strings.Join(out, ", ")
}
