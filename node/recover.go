package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/ring"
)

// ErrQuorumLost and ErrEvicted are elastic's: this node's loss, not a
// fault of the job.
var (
	ErrQuorumLost = elastic.ErrQuorumLost
	ErrEvicted    = elastic.ErrEvicted
)

func ringFailure(err error) error { return elastic.RingFailure(err) }

func isRingFailure(err error) bool { return elastic.IsRingFailure(err) }

// IsPeerFailure reports whether err is a failure of the ring (a peer died,
// stalled or closed its connections) rather than a fault of this node: a
// launcher then looks for the cause on the other nodes.
func IsPeerFailure(err error) bool { return isRingFailure(err) }

// recover re-forms the ring after a failed collective: θ is untouched by the
// failed step, so the survivors agree on a new ring epoch, on the step to go
// on from (a node behind receives θ and optimizer state from one ahead),
// re-shard the rows, and return; the caller redoes the step. A ring needs
// more than half of the processes of the last ring and at least
// cluster.min_nodes members; with fewer, this node waits for nodes to come
// back for cluster.rejoin_timeout, then fails with ErrQuorumLost. A node that
// the others left out (it sees them gossip a ring it was never in) comes back
// under a fresh gossip name once its attempts have failed for renewAfter.
func (t *trainer) recover(ctx context.Context, cause error) error {
	failed := time.Now()
	if t.failedAt.IsZero() { // a recovery cut short by another failure counts from the first
		t.failedAt = failed
	}
	t.w.tl.ringFailed(failed, cause, t.done)
	old := t.w.members
	t.comm().Close()
	t.w.progress.setPhase(PhaseRecovering)
	if !errors.Is(cause, errNewMember) {
		t.recoveries++
	}
	defer t.w.progress.setPhase(PhaseTraining)
	if errors.Is(cause, errNewMember) {
		t.log.Debug("a node joined: re-forming the ring", "step", t.done)
	} else {
		t.log.Warn("ring failed: re-forming", "cause", cause, "step", t.done)
	}
	deadline := failed.Add(t.cfg.Cluster.RejoinTimeout.Duration)
	var last error
	var wait elastic.Backoff
	renewed := false
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if m, ok := elastic.ForeignRing(t.w.mem.Members(), t.w.rings); ok && !renewed && time.Since(failed) > renewAfter {
			// The others train in a ring this node was never in: they
			// evicted it (it was stopped, or cut off) and gossip may be slow
			// to take its old name back. Come back as a new member. Its θ
			// and step are stale; resume replaces them with the ring's.
			t.log.Info("others train in a ring this node is not in", "member", m.String(), "their ring", m.Ring)
			if err := t.w.renew(ctx, old); err != nil {
				return err
			}
			t.log = t.w.log
			t.seenGen = 0
			renewed = true // once: a name that keeps changing is one the others can never form a ring with
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: no ring of more than half of the last %d nodes (and at least %d) formed within %v; last problem: %v",
				ErrQuorumLost, len(t.w.members), t.cfg.Cluster.MinNodes, t.cfg.Cluster.RejoinTimeout.Duration, last)
		}
		view := t.w.liveView(ctx)
		// A live member of a higher term went on without this node: it is
		// behind and joins like a new node (that member's quorum guards
		// the ring). Otherwise quorum counts against its last ring.
		behind := slices.ContainsFunc(view, func(m Member) bool { return m.Term > t.w.term })
		if q := elastic.Quorum(view, t.w.members); !behind && (2*q <= len(t.w.members) || len(view) < t.cfg.Cluster.MinNodes) {
			last = fmt.Errorf("only %d of the last ring's %d nodes reachable", q, len(t.w.members))
			// This node may be the one cut off (stopped, partitioned): its
			// gossip then thinks everyone else dead and talks to no one.
			// Knock on the last ring's doors.
			t.w.mem.Knock(ctx, old)
			t.w.mem.WaitChange(ctx, 250*time.Millisecond)
			continue
		}
		if err := t.tryRing(ctx, view, wait.Next()); err != nil {
			last = err
			t.log.Debug("ring attempt failed", "attempt", attempt, "err", err)
			t.w.mem.WaitChange(ctx, 100*time.Millisecond)
			continue
		}
		level := t.log.Debug
		if t.comm().Rank() == 0 {
			level = t.log.Info // once per recovery, by the new ring's rank 0
		}
		t.w.prom.recovered(cause)
		msg := "ring recovered"
		if errors.Is(cause, errNewMember) {
			msg = "ring re-formed"
		}
		level(msg, "lost", lost(old, view), "joined", lost(view, old), "cause", cause, "decided by", fmt.Sprintf("consensus of %d survivors", len(view)),
			"ring", ringString(view), "epoch", t.w.epoch, "resume at step", t.done, "pause", time.Since(failed).Round(time.Millisecond), noticeIf(t.comm().Rank() == 0))
		t.w.tl.ringReformed(failed, t.comm().Rank(), t.comm().Size(), t.done)
		return nil
	}
}

// tryRing makes one attempt at the ring of view: it connects (waiting at
// most wait for every member to be in the same attempt), agrees on the view
// (deadline: wait again, counted from when this node is connected, so that
// members whose attempts began at different moments still meet), then
// brings everyone to the same state and re-shards the rows (deadline:
// cluster.timeout, the bound on loading data at the start). On failure the
// ring's connections are closed.
func (t *trainer) tryRing(ctx context.Context, view []Member, wait time.Duration) error {
	if err := t.w.formRing(ctx, view, elastic.EpochOf(view), wait); err != nil {
		return err
	}
	t.log = t.w.log.With("rank", t.comm().Rank())
	rctx, cancel := context.WithTimeout(ctx, t.cfg.Cluster.Timeout.Duration)
	defer cancel()
	if err := t.resume(rctx); err != nil {
		t.comm().Close()
		return err
	}
	return nil
}

// syncState brings every member of the ring to the state of the lowest
// rank at the highest step: a node behind (it missed the last step, it just
// joined and has nothing, or it resumes without a checkpoint of its own)
// receives the data's shape and standardization, then θ, the optimizer
// state and the step. Recovery, joins and -resume all go through it.
func (t *trainer) syncState(ctx context.Context) error {
	c := t.comm()
	v := []float64{float64(t.done), -float64(t.done)}
	if err := c.AllReduce(ctx, ring.Max, v); err != nil {
		return err
	}
	high, low := int(v[0]), int(-v[1])
	if high < 0 {
		return errors.New("no member of the ring has any state")
	}
	if high != low {
		r := []float64{float64(c.Size())}
		if t.done == high {
			r[0] = float64(c.Rank())
		}
		if err := c.AllReduce(ctx, ring.Min, r); err != nil {
			return err
		}
		root := int(r[0])
		if err := t.shareDataShape(ctx, root); err != nil {
			return err
		}
		if t.cands == nil { // a joiner: now it knows enough to build the models
			if err := t.build(); err != nil {
				return err
			}
		}
		P := t.paramsLen()
		buf := make([]float64, 0, P+t.stateLen())
		buf = t.appendState(t.appendTheta(buf))
		if err := c.Broadcast(ctx, root, buf); err != nil {
			return err
		}
		t.setTheta(buf)
		if err := t.setState(buf[P:]); err != nil {
			return err
		}
		t.done = high
	}
	return nil
}

// resume brings every member of the new ring to the same step and state
// (syncState) and re-shards the rows.
func (t *trainer) resume(ctx context.Context) error {
	c := t.comm()
	if err := t.syncState(ctx); err != nil {
		return err
	}
	d, err := loadData(ctx, c, t.w.members, t.cfg, t.data)
	if err != nil {
		return err
	}
	t.data = d
	t.buildValidation()
	t.w.tl.dataLoaded(d)
	t.log.Info("rows read for the new ring", "rows", d.read, "own rows", d.train.Len(), "took", d.readTook.Round(time.Millisecond))
	t.evalNext = true // metrics.csv shows the new world size from here
	if c.Rank() != 0 && t.metrics != nil {
		t.metrics.Close()
		t.metrics = nil
	}
	return t.openMetrics(true)
}

// shareDataShape broadcasts from root what every node must agree on about
// the data: the number of classes, the standardization statistics and the
// class counts (imbalance.go).
func (t *trainer) shareDataShape(ctx context.Context, root int) error {
	f := t.data.features
	buf := make([]float64, 2+2*f)
	if t.comm().Rank() == root {
		buf[0] = float64(t.data.classes)
		if t.data.mean != nil {
			buf[1] = 1
			copy(buf[2:], t.data.mean)
			copy(buf[2+f:], t.data.std)
		}
	}
	if err := t.comm().Broadcast(ctx, root, buf); err != nil {
		return err
	}
	t.data.classes = int(buf[0])
	if buf[1] == 1 {
		t.data.mean, t.data.std = buf[2:2+f], buf[2+f:]
	}
	return t.shareClassCounts(ctx, root)
}

func lost(old, now []Member) string {
	var out []string
	for _, m := range old {
		if !slices.ContainsFunc(now, func(x Member) bool { return x.Name == m.Name }) {
			out = append(out, m.String())
		}
	}
	return strings.Join(out, ", ")
}

// liveView returns the gossip members (in ring order) whose data plane still
// accepts connections. A killed process refuses at once, so the survivors do
// not wait for gossip to declare it dead; a stopped or cut-off one does not
// answer within the probe timeout.
func (w *worker) liveView(ctx context.Context) []Member {
	return elastic.LiveMembers(ctx, w.mem.Members(), w.mem.Name())
}

// renewAfter is how long a recovery must have failed before an evicted
// node renews its identity. A recovery takes milliseconds, and most evicted
// nodes come back by refuting their death in gossip; renewing at once would
// make every such return a second change of the ring.
const renewAfter = 2 * time.Second

// renew leaves the cluster under this node's gossip name, which the others
// hold dead, and joins the members of ring again under a fresh one.
func (w *worker) renew(ctx context.Context, ring []Member) error {
	old := w.mem.Name()
	var addrs []string
	for _, m := range ring {
		if m.Name != old {
			addrs = append(addrs, m.Gossip)
		}
	}
	jctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	mem, err := w.mem.Renew(jctx, addrs)
	if err != nil {
		return fmt.Errorf("%w, and cannot rejoin under a new name: %w", ErrEvicted, err)
	}
	w.mem = mem
	w.log = w.baseLog.With("node", mem.Name())
	w.log.Warn("the others evicted this node (it was stopped or cut off): rejoining as a new member", "old name", old, Notice)
	return nil
}
