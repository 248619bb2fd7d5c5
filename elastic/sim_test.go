package elastic

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// The simulation drives the Cores of an in-memory cluster of 3 to 9 nodes
// through random schedules of kills, stops and resumes, partitions and
// heals, joins, stale (delayed) membership views and collectives that
// complete on some members only, and checks after every tick:
//
//   - no split brain: at most one ring commits a step in a tick (two rings
//     that both can step hold disjoint members, since a node is in one ring);
//   - no step applied twice or skipped: a node's step only grows, by one
//     per applied step or to the ring's highest by a state transfer, and its
//     state digest is always the chain's at its step;
//   - every member of a ring that steps holds the same step and digest;
//   - progress: once the schedule ends (everything healed and resumed), a
//     ring of every live node commits a step within a bounded number of
//     ticks, if a majority of the last committed ring is alive.
//
// A failing schedule prints its seed; -sim.seed=N replays it with a trace.
var (
	simSeed      = flag.Uint64("sim.seed", 0, "replay the simulation schedule of this seed, with a trace")
	simSchedules = flag.Int("sim.schedules", 0, "how many random schedules TestSimulation runs (0: 1500, or 300 with -short)")
)

const (
	simConnectWait = 3   // ticks an attempt waits for every member
	simStepTimeout = 3   // ticks a step waits on a stopped or cut-off member
	simEvictAfter  = 3   // ticks of silence after which gossip holds a node dead
	simSettle      = 400 // ticks the cluster gets, once healed, to make progress
)

type simOp uint8

const (
	opNone simOp = iota
	opConnect
	opAgree
	opSync
	opTrain
)

type simNode struct {
	id        int
	core      *Core
	self      Member
	dead      bool // killed, or failed (it exited)
	failed    error
	failAt    int64
	failLegit bool // when it failed, no majority of the newest connected ring was alive
	stopped   bool
	stopAt    int64
	trained   bool   // gossips "training"
	ring      uint32 // the ring it gossips
	term      uint32 // and its term

	op    simOp
	epoch uint32
	key   string // the members of the op's ring
	since int64
	sync  Sync
	agree uint64 // the digest it agrees with

	step   int
	digest uint64
	all    []Member // its current (possibly stale) view
}

type sim struct {
	t      testing.TB
	seed   uint64
	rng    *rand.Rand
	trace  bool
	now    int64
	nodes  []*simNode
	cut    map[[2]int]bool         // unreachable pairs (partition)
	deadTo map[int]map[string]bool // observer -> names it holds dead
	revive map[string]int64        // name -> tick at which its slow refutation reaches everyone
	last   []Member                // the last ring that committed a step
	newest []Member                // the last ring with state that connected (quorum counts against it)
	lastAt int64
	commit int // commits so far
	events int
}

// chainDigest is the state digest after step s steps: what every node's
// state must hold at that step.
func chainDigest(s int) uint64 {
	z := uint64(s)*0x9e3779b97f4a7c15 + 0x1234567
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	return z ^ z>>27
}

func newSim(t testing.TB, seed uint64, trace bool) *sim {
	s := &sim{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 7)), trace: trace, cut: map[[2]int]bool{}, deadTo: map[int]map[string]bool{}, revive: map[string]int64{}}
	n := 3 + s.rng.IntN(7)
	cfg := CoreConfig{Nodes: n, MinNodes: 1 + s.rng.IntN(2), RejoinTicks: int64(200 + s.rng.IntN(100)), RenewTicks: 5}
	for range n {
		s.addNode(cfg, 0)
	}
	return s
}

func (s *sim) logf(format string, args ...any) {
	if s.trace {
		s.t.Logf("t=%d "+format, append([]any{s.now}, args...)...)
	}
}

func (s *sim) fail(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("seed %d (replay: go test ./elastic -run TestSimulation -sim.seed=%d -v), tick %d: %s", s.seed, s.seed, s.now, fmt.Sprintf(format, args...))
}

func (s *sim) addNode(cfg CoreConfig, step int) *simNode {
	id := len(s.nodes)
	n := &simNode{id: id, step: step, digest: chainDigest(max(step, 0))}
	n.self = Member{Name: fmt.Sprintf("n%d", id), Meta: Meta{Host: "h", Slot: id, Start: int64(id + 1), Data: fmt.Sprintf("d%d", id)}}
	cfg.Self = n.self
	n.core = NewCore(cfg)
	s.nodes = append(s.nodes, n)
	s.deadTo[id] = map[string]bool{}
	n.core.Start(step)
	s.drain(n)
	return n
}

func (s *sim) reachable(a, b int) bool {
	return a == b || (!s.cut[[2]int{a, b}] && !s.cut[[2]int{b, a}])
}

func (s *sim) running(n *simNode) bool { return !n.dead && !n.stopped }

// view is what node n's gossip shows now: the nodes it can reach that are
// running and that it does not hold dead.
func (s *sim) view(n *simNode) []Member {
	var out []Member
	for _, m := range s.nodes {
		if m == n || (s.running(m) && s.reachable(n.id, m.id) && !s.deadTo[n.id][m.self.Name]) {
			x := m.self
			x.Ring, x.Term = m.ring, m.term
			if m.trained {
				x.State = StateTraining
			}
			out = append(out, x)
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return a.Slot - b.Slot })
	return out
}

func ringKey(ms []Member) string {
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Name
	}
	return strings.Join(names, ",")
}

// drain carries out node n's actions until it asks for none.
func (s *sim) drain(n *simNode) {
	for !n.dead {
		acts := n.core.Ready()
		if len(acts) == 0 {
			return
		}
		for _, a := range acts {
			s.logf("n%d: %T %+v", n.id, a, a)
			switch a := a.(type) {
			case Connect:
				n.op, n.epoch, n.key, n.since = opConnect, a.Epoch, ringKey(a.Members), s.now
			case Agree:
				n.op, n.since, n.agree = opAgree, s.now, a.Digest
			case Sync:
				n.op, n.since, n.sync = opSync, s.now, a
			case Publish:
				n.ring, n.term = a.Ring, a.Term
			case Train:
				n.op, n.since, n.trained = opTrain, s.now, true
			case Leave:
				n.op = opNone
			case Rejoin:
			case Renew:
				life := n.self.Life + 1
				n.self.Life = life
				n.self.Name = fmt.Sprintf("n%d.%d", n.id, life)
				n.core.Renewed(n.self)
			case Fail:
				n.failLegit = !s.quorumAlive(s.newest)
				n.dead, n.failed, n.op, n.failAt = true, a.Err, opNone, s.now
			}
		}
	}
}

// member returns the running node named name, or nil.
func (s *sim) member(name string) *simNode {
	for _, n := range s.nodes {
		if n.self.Name == name && !n.dead {
			return n
		}
	}
	return nil
}

// group returns the nodes of the ring of n's op, and whether every one of
// them is running, reachable from the others and at the same op of the same
// ring (blame: why not, "dead" when a member is gone for good).
func (s *sim) group(n *simNode) (ms []*simNode, ok bool, gone bool) {
	ok = true
	for _, name := range strings.Split(n.key, ",") {
		m := s.member(name)
		if m == nil {
			return nil, false, true
		}
		if m.op == opNone && m != n && m.epoch == n.epoch && m.trained && n.op == opTrain {
			gone = true // it left the ring
		}
		if !s.running(m) || m.op != n.op || m.epoch != n.epoch || m.key != n.key {
			ok = false
		}
		ms = append(ms, m)
	}
	for _, a := range ms {
		for _, b := range ms {
			if !s.reachable(a.id, b.id) {
				ok = false
			}
		}
	}
	return ms, ok, gone
}

// resolve completes (or fails) the collectives the nodes wait in.
func (s *sim) resolve() {
	committed := 0
	done := map[*simNode]bool{}
	for _, n := range s.nodes {
		if !s.running(n) || n.op == opNone || done[n] {
			continue
		}
		ms, ok, gone := s.group(n)
		late := s.now-n.since >= simConnectWait
		switch {
		case ok:
			for _, m := range ms {
				done[m] = true
			}
			if n.op == opTrain {
				committed++
				s.logf("commit by ring %s", n.key)
			}
			s.complete(n.op, ms)
		case n.op == opTrain && (gone || s.now-n.since >= simStepTimeout):
			done[n] = true
			s.logf("n%d: step fails (ring %s)", n.id, n.key)
			n.core.RingFailed(fmt.Errorf("peer lost"))
		case n.op != opTrain && (gone || late):
			done[n] = true
			s.failOp(n)
		}
	}
	if committed > 1 {
		s.fail("%d rings committed a step in one tick: split brain", committed)
	}
	for _, n := range s.nodes {
		s.drain(n)
	}
}

func (s *sim) failOp(n *simNode) {
	err := fmt.Errorf("timed out")
	op := n.op
	n.op = opNone // until the core asks for the next
	switch op {
	case opConnect:
		n.core.Connected(n.epoch, err)
	case opAgree:
		n.core.Agreed(n.epoch, nil, nil, err)
	case opSync:
		n.core.Synced(n.epoch, 0, err)
	}
}

// complete runs the collective op of ring ms; a few complete on some
// members only (the others see it fail), as when a member dies late in an
// allgather.
func (s *sim) complete(op simOp, ms []*simNode) {
	partial := s.rng.IntN(25) == 0 && len(ms) > 1
	okFor := func(i int) bool { return !partial || i%2 == 0 }
	switch op {
	case opConnect: // a few complete on some members only (the others time out just then)
		var ring []Member // every member: those that connected count quorum against all of it
		state := false
		for i, m := range ms {
			ring = append(ring, m.self)
			if !okFor(i) {
				m.op = opNone
				m.core.Connected(m.epoch, fmt.Errorf("timed out"))
				continue
			}
			state = state || m.step >= 0
			m.core.Connected(m.epoch, nil)
		}
		if state { // a ring of joiners without state cannot train: it does not count
			s.newest = ring
		}
	case opAgree:
		digests, steps := make([]uint64, len(ms)), make([]int, len(ms))
		for i, m := range ms {
			digests[i], steps[i] = m.agree, m.step
		}
		for i, m := range ms {
			if okFor(i) {
				m.core.Agreed(m.epoch, digests, steps, nil)
			} else {
				m.core.Agreed(m.epoch, nil, nil, fmt.Errorf("peer lost"))
			}
		}
	case opSync:
		root := ms[ms[0].sync.Root]
		for _, m := range ms {
			if !sameSync(m.sync, ms[0].sync) {
				s.fail("members of ring %s disagree on the transfer: %+v and %+v", m.key, m.sync, ms[0].sync)
			}
		}
		if root.step != ms[0].sync.Step {
			s.fail("the transfer's root n%d is at step %d, the transfer says %d", root.id, root.step, ms[0].sync.Step)
		}
		for _, m := range ms {
			if root.step < m.step {
				s.fail("n%d would go back from step %d to %d", m.id, m.step, root.step)
			}
			m.step, m.digest = root.step, root.digest
			m.core.Synced(m.epoch, m.step, nil)
		}
	case opTrain:
		for _, m := range ms {
			if m.step != ms[0].step || m.digest != ms[0].digest {
				s.fail("ring %s steps with members at different states: n%d at %d, n%d at %d", m.key, m.id, m.step, ms[0].id, ms[0].step)
			}
		}
		s.commit++
		s.last, s.lastAt = nil, s.now
		for i, m := range ms {
			s.last = append(s.last, m.self)
			if !okFor(i) {
				continue
			}
			m.step++
			m.digest = chainDigest(m.step)
			m.since = s.now
			m.core.Stepped(m.step)
		}
		if partial {
			for _, m := range ms {
				if m.op == opTrain {
					m.core.RingFailed(fmt.Errorf("peer lost"))
				}
			}
		}
	}
}

func sameSync(a, b Sync) bool {
	return a.Epoch == b.Epoch && a.Root == b.Root && a.Step == b.Step && slices.Equal(a.Behind, b.Behind)
}

// check asserts the per-node invariants.
func (s *sim) check(prev map[int]int) {
	for _, n := range s.nodes {
		if p, ok := prev[n.id]; ok && n.step < p {
			s.fail("n%d went back from step %d to %d", n.id, prev[n.id], n.step)
		}
		if n.step >= 0 && n.digest != chainDigest(n.step) {
			s.fail("n%d holds a state at step %d that is not the chain's (a step skipped or applied twice)", n.id, n.step)
		}
		prev[n.id] = n.step
	}
}

// event applies one random change to the cluster.
func (s *sim) event() {
	s.events++
	alive := slices.DeleteFunc(slices.Clone(s.nodes), func(n *simNode) bool { return n.dead })
	if len(alive) == 0 {
		return
	}
	n := alive[s.rng.IntN(len(alive))]
	switch k := s.rng.IntN(10); {
	case k < 2 && len(alive) > 1:
		s.logf("kill n%d", n.id)
		n.dead, n.op = true, opNone
	case k < 4 && !n.stopped:
		s.logf("stop n%d", n.id)
		n.stopped, n.stopAt = true, s.now
	case k < 5:
		s.resumeAll()
	case k < 7:
		s.logf("partition")
		for _, a := range s.nodes {
			for _, b := range s.nodes {
				if a.id < b.id && s.rng.IntN(2) == 0 && (a.id%2 != b.id%2) {
					s.cut[[2]int{a.id, b.id}] = true
				}
			}
		}
	case k < 8:
		s.heal()
	case len(s.nodes) < 9:
		s.logf("join n%d", len(s.nodes))
		s.addNode(s.nodes[0].core.cfg, -1)
	}
}

func (s *sim) resumeAll() {
	for _, n := range s.nodes {
		if n.stopped {
			s.logf("resume n%d", n.id)
			n.stopped = false
			s.refute(n)
		}
	}
}

func (s *sim) heal() {
	s.logf("heal")
	s.cut = map[[2]int]bool{}
	for _, n := range s.nodes {
		s.refute(n)
	}
}

// refute: a node back in touch with the others refutes its death at once
// (gossip spreads its alive message to every observer), or only after a
// while: then the death first spreads to every observer, as gossip
// converges one way or the other, and a renewal brings the node back
// sooner.
func (s *sim) refute(n *simNode) {
	held := false
	for _, dead := range s.deadTo {
		held = held || dead[n.self.Name]
	}
	if !held {
		return
	}
	revive := s.rng.IntN(3) > 0
	if !revive {
		delay := 5 + s.rng.IntN(35)
		if s.rng.IntN(3) == 0 {
			delay = 100 + s.rng.IntN(50) // slow: a renewal comes back sooner
		}
		s.revive[n.self.Name] = s.now + int64(delay)
	}
	for o := range s.deadTo {
		if revive {
			delete(s.deadTo[o], n.self.Name)
		} else if o != n.id {
			s.deadTo[o][n.self.Name] = true
		}
	}
}

// gossip updates who holds whom dead, and hands the nodes their views
// (some stale: a node's view is refreshed in a tick with probability 2/3).
func (s *sim) gossip() {
	for _, n := range s.nodes {
		if !n.stopped || n.dead || s.now-n.stopAt < simEvictAfter {
			continue
		}
		for o := range s.deadTo {
			if o != n.id {
				s.deadTo[o][n.self.Name] = true
			}
		}
	}
	for name, at := range s.revive {
		if s.now >= at && len(s.cut) == 0 {
			delete(s.revive, name)
			for o := range s.deadTo {
				delete(s.deadTo[o], name)
			}
		}
	}
	for k := range s.cut {
		a, b := s.nodes[k[0]], s.nodes[k[1]]
		s.deadTo[a.id][b.self.Name], s.deadTo[b.id][a.self.Name] = true, true
	}
	for _, n := range s.nodes {
		if !s.running(n) || (n.all != nil && s.rng.IntN(3) == 0) {
			continue
		}
		n.all = s.view(n)
		n.core.View(n.all, n.all)
		s.drain(n)
	}
}

func (s *sim) tick(prev map[int]int) {
	s.now++
	s.gossip()
	s.resolve()
	for _, n := range s.nodes {
		if s.running(n) {
			n.core.Tick()
			s.drain(n)
		}
	}
	s.check(prev)
}

// run plays one schedule: the first ring forms, then events at random
// ticks, then everything heals and the cluster must make progress.
func (s *sim) run() {
	prev := map[int]int{}
	for s.commit == 0 {
		if s.now > 200 {
			s.fail("the first ring of %d nodes did not form in 200 ticks", len(s.nodes))
		}
		s.tick(prev)
	}
	for range 10 + s.rng.IntN(40) {
		s.event()
		for range s.rng.IntN(12) {
			s.tick(prev)
		}
	}
	s.resumeAll()
	s.heal()
	for name, at := range s.revive { // healed, gossip converges within 40 ticks
		s.revive[name] = min(at, s.now+40)
	}
	s.logf("settle")
	healed := s.now
	var quorumOK bool
	for range simSettle {
		s.tick(prev)
		live := slices.DeleteFunc(slices.Clone(s.nodes), func(n *simNode) bool { return n.dead })
		quorumOK = s.quorumAlive(s.newest)
		for _, n := range s.nodes {
			if n.failed != nil && n.failAt > healed+60 && !n.failLegit {
				s.fail("n%d gave up at tick %d (%v), well after everything healed at %d", n.id, n.failAt, n.failed, healed)
			}
		}
		if s.lastAt > healed && len(s.last) == len(live) {
			return // a ring of every live node committed a step
		}
		if len(live) == 0 || !quorumOK {
			return // no majority of the last ring is left: waiting or failing is right
		}
	}
	s.fail("healed at tick %d, a majority of the newest ring (%s) alive, but no ring of all %d live nodes stepped within %d ticks",
		healed, ringKey(s.newest), len(s.nodes), simSettle)
}

// quorumAlive reports whether more than half of ring's processes are alive.
func (s *sim) quorumAlive(ring []Member) bool {
	var ms []Member
	for _, n := range s.nodes {
		if !n.dead {
			ms = append(ms, n.self)
		}
	}
	return 2*Quorum(ms, ring) > len(ring)
}

// TestSimulation runs the random schedules (see the top of this file).
func TestSimulation(t *testing.T) {
	if *simSeed != 0 {
		newSim(t, *simSeed, true).run()
		return
	}
	n := *simSchedules
	if n == 0 {
		n = 1500
		if testing.Short() {
			n = 300
		}
	}
	start := time.Now()
	var ticks, events, commits int64
	for seed := uint64(1); seed <= uint64(n); seed++ {
		s := newSim(t, seed, false)
		s.run()
		ticks, events, commits = ticks+s.now, events+int64(s.events), commits+int64(s.commit)
	}
	t.Logf("%d schedules, %d events, %d ticks, %d steps committed, in %v", n, events, ticks, commits, time.Since(start).Round(time.Millisecond))
}
