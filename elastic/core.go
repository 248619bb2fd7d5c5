package elastic

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
)

// Core is the elastic protocol's decisions for one node, as a pure state
// machine in the manner of etcd-io/raft's RawNode: no I/O, no goroutines, no
// clock. Its inputs are membership views, the results of the ring
// collectives a driver ran for it, and ticks; its outputs are Actions that
// the driver carries out (connect to a ring, run the agreement, send or
// receive state, knock on doors, renew the gossip name, fail). A driver
// loops:
//
//	c := elastic.NewCore(elastic.CoreConfig{Self: me, Nodes: 4, MinNodes: 1, RejoinTicks: 600, RenewTicks: 20})
//	c.Start(step)                      // -1: no state yet (a joiner)
//	for {
//		for _, a := range c.Ready() { // do what it asks, feed the results back
//			switch a := a.(type) {
//			case elastic.Connect: c.Connected(a.Epoch, dial(a))
//			...
//			}
//		}
//		c.View(all, live)              // on every membership change
//		c.Tick()                       // on every tick of the driver's clock
//	}
//
// The rules (DESIGN.md, "Membership, failures and recovery"):
//   - The first ring is the first Nodes members of the view in ring order,
//     once that many are there; a node that finds members training already
//     joins instead. Its epoch is EpochOf those members, like any ring's, so
//     that a member whose first attempt failed while others' completed
//     meets them again.
//   - After a failure a node forms a ring from its live view only if the
//     view holds more than half of the processes of the last ring it was
//     connected into (committed: quorum is counted against it, never
//     against a joiner) and at least MinNodes members. Two majorities of one
//     ring intersect, so two disjoint groups never both train. Each node
//     keeps a term, a Lamport clock of its rings: connecting into a ring, it
//     takes one more than the highest term in its view. Since every ring
//     holds a majority of the one before, terms grow along the one chain of
//     rings, and a node whose live view holds a member of a higher term is
//     behind (the others went on without it): it joins like a new node, and
//     that member's own quorum guards the ring.
//   - A ring's epoch id is a hash of its members' names (EpochOf): any two
//     nodes forming a ring from the same view name it the same.
//   - The agreement (an allgather of every rank's view digest and step)
//     must show one view; then the lowest rank at the highest step sends
//     its state to every rank behind it, so no step is lost or applied
//     twice.
//   - Without quorum a node knocks on the last ring's doors until
//     RejoinTicks have passed since the failure, then fails with
//     ErrQuorumLost. If its attempts have failed for RenewTicks and gossip
//     shows others in a ring it was never in (they evicted it, and may be
//     slow to take its old name back), it renews its gossip name (again only
//     after 8 RenewTicks: the new name may have been declared dead too).
//   - A training node that sees a member outside its ring leaves the ring at
//     the next step boundary (Reform), so that the ring re-forms with it.
type Core struct {
	cfg   CoreConfig
	self  Member
	phase Phase
	now   int64

	step     int             // steps this node's state holds; -1: none
	ring     []Member        // the last ring this node was connected into (quorum counts against it)
	epochs   map[uint32]bool // every ring epoch it was connected into
	term     uint32          // the term of ring (see Meta.Term)
	cur      []Member        // the ring being formed or trained in
	epoch    uint32
	curTerm  uint32   // and its term
	all      []Member // the last view: every member gossip knows
	live     []Member // and those whose data plane answers
	failing  bool     // recovering from a failure, since failedAt
	failedAt int64    // tick of the failure being recovered from
	renewed  bool     // renewed its name since the failure
	renewAt  int64    // when it last did
	reform   bool     // a member outside the ring was seen: leave at the next step boundary
	err      error
	out      []Action
}

// CoreConfig configures a Core. Ticks are the driver's unit of time.
type CoreConfig struct {
	Self        Member // this node, as gossip names it
	Nodes       int    // members of the first ring
	MinNodes    int    // a ring trains only with at least this many
	RejoinTicks int64  // how long a node without quorum keeps trying
	RenewTicks  int64  // how long a recovery must fail before an evicted node renews its name
}

// Phase is where a Core is in the protocol.
type Phase uint8

// The phases, in the order a ring goes through them.
const (
	PhaseIdle       Phase = iota // not started
	PhaseWaiting                 // for a view to form a ring from
	PhaseConnecting              // Connect issued
	PhaseAgreeing                // Agree issued
	PhaseSyncing                 // Sync issued
	PhaseTraining                // in a ring: the application steps
	PhaseFailed                  // Err says why
)

func (p Phase) String() string {
	return [...]string{"idle", "waiting", "connecting", "agreeing", "syncing", "training", "failed"}[p]
}

// Actions a Core asks its driver for.
type (
	// Connect: connect into the ring of Members (in rank order) for Epoch,
	// as rank Rank; report with Connected.
	Connect struct {
		Epoch   uint32
		Members []Member
		Rank    int
	}
	// Publish: gossip Ring and Term as this node's ring (Meta.Ring,
	// Meta.Term): the last ring it was connected into, against which its
	// quorum now counts. A node left behind learns from a higher term that
	// the others went on without it.
	Publish struct{ Ring, Term uint32 }
	// Agree: run the agreement on the connected ring: an allgather of
	// every rank's Digest (ViewDigest of the members) and step; report with
	// Agreed.
	Agree struct {
		Epoch  uint32
		Digest uint64
	}
	// Sync: rank Root sends its state (at step Step) to the ranks in
	// Behind; report with Synced.
	Sync struct {
		Epoch  uint32
		Root   int
		Step   int
		Behind []int
	}
	// Train: the ring is formed and every member holds the same step; the
	// application may step (report each with Stepped, a failure with
	// RingFailed).
	Train struct {
		Epoch uint32
		Step  int
	}
	// Leave: close the connections of the ring of Epoch (it failed, or a
	// member outside it must be let in).
	Leave struct{ Epoch uint32 }
	// Rejoin: this node lacks quorum; ask the gossip of Members to take it
	// back (it may be the one cut off).
	Rejoin struct{ Members []Member }
	// Renew: the others evicted this node; come back under a new gossip
	// name and report it with Renewed.
	Renew struct{}
	// Fail: the node cannot go on; Err says why (ErrQuorumLost, ...).
	Fail struct{ Err error }
)

// Action is one of Connect, Publish, Agree, Sync, Train, Leave, Rejoin,
// Renew, Fail.
type Action any

// ErrNoState: no member of a ring holds any state (every one is a joiner).
var ErrNoState = errors.New("no member of the ring has any state")

// NewCore returns a Core for cfg.Self; Start begins the protocol.
func NewCore(cfg CoreConfig) *Core {
	if cfg.MinNodes < 1 {
		cfg.MinNodes = 1
	}
	return &Core{cfg: cfg, self: cfg.Self, step: -1, epochs: map[uint32]bool{}}
}

// Start begins with the state at step (-1: none, a node that joins).
func (c *Core) Start(step int) {
	c.step, c.phase = step, PhaseWaiting
	c.decide()
}

// Ready returns the actions decided since the last call, in order.
func (c *Core) Ready() []Action {
	out := c.out
	c.out = nil
	return out
}

// Phase is the core's phase; Err, once it is PhaseFailed, says why.
func (c *Core) Phase() Phase { return c.phase }

// Err is why the core failed (nil before).
func (c *Core) Err() error { return c.err }

// Step is the step this node's state holds (-1: none).
func (c *Core) Step() int { return c.step }

// Ring is the ring being formed or trained in, in rank order.
func (c *Core) Ring() ([]Member, uint32) { return c.cur, c.epoch }

// Self is this node's member, as last renewed.
func (c *Core) Self() Member { return c.self }

// View gives the membership: all the members gossip knows (with the ring
// each gossips it is in) and live, those whose data plane answers, both in
// ring order (Membership.Members). This node is in both.
func (c *Core) View(all, live []Member) {
	c.all, c.live = all, live
	if c.phase == PhaseTraining && !c.reform && c.Outsider() {
		c.reform = true // at the next step boundary (Stepped)
	}
	c.decide()
}

// Outsider reports whether the last view holds a member outside the ring
// being formed or trained in: one to let in.
func (c *Core) Outsider() bool {
	return slices.ContainsFunc(c.all, func(m Member) bool { return !contains(c.cur, m.Name) })
}

// Tick advances the core's clock by one tick.
func (c *Core) Tick() {
	c.now++
	c.decide()
}

// Connected reports the result of Connect for epoch.
func (c *Core) Connected(epoch uint32, err error) {
	if c.phase != PhaseConnecting || epoch != c.epoch {
		return
	}
	if err != nil {
		c.phase = PhaseWaiting
		c.decide()
		return
	}
	// From here the ring may commit: quorum counts against it (see
	// DESIGN.md: members finish the agreement at different moments).
	c.ring, c.term, c.epochs[epoch] = c.cur, c.curTerm, true
	c.phase = PhaseAgreeing
	c.emit(Publish{Ring: epoch, Term: c.term}, Agree{Epoch: epoch, Digest: ViewDigest(c.cur)})
}

// Agreed reports the agreement's result for epoch: every rank's view
// digest and step, in rank order (err: the collective failed).
func (c *Core) Agreed(epoch uint32, digests []uint64, steps []int, err error) {
	if c.phase != PhaseAgreeing || epoch != c.epoch {
		return
	}
	if err == nil && (len(digests) != len(c.cur) || len(steps) != len(c.cur)) {
		err = fmt.Errorf("agreement: %d digests and %d steps for a ring of %d", len(digests), len(steps), len(c.cur))
	}
	if err == nil && slices.ContainsFunc(digests, func(d uint64) bool { return d != digests[0] }) {
		err = errors.New("the nodes formed the ring from different membership views")
	}
	if err != nil {
		c.leave()
		return
	}
	high := slices.Max(steps)
	if high < 0 {
		c.phase, c.err = PhaseFailed, ErrNoState
		c.emit(Leave{Epoch: epoch}, Fail{Err: ErrNoState})
		return
	}
	var behind []int
	for r, s := range steps {
		if s != high {
			behind = append(behind, r)
		}
	}
	if len(behind) == 0 {
		c.train()
		return
	}
	c.phase = PhaseSyncing
	c.emit(Sync{Epoch: epoch, Root: slices.Index(steps, high), Step: high, Behind: behind})
}

// Synced reports the end of Sync for epoch: this node's state is now at
// the Sync's step (err: the transfer failed).
func (c *Core) Synced(epoch uint32, step int, err error) {
	if c.phase != PhaseSyncing || epoch != c.epoch {
		return
	}
	if err != nil {
		c.leave()
		return
	}
	c.step = step
	c.train()
}

// Stepped reports that the application applied a step: its state now
// holds done steps.
func (c *Core) Stepped(done int) {
	if c.phase != PhaseTraining {
		return
	}
	c.step = done
	if c.reform { // a step boundary: let the new member in
		c.leave()
	}
}

// RingFailed reports that a collective of the training ring failed (a
// peer died, stalled or left); the state is as before the failed step.
func (c *Core) RingFailed(err error) {
	if c.phase != PhaseTraining && c.phase != PhaseAgreeing && c.phase != PhaseSyncing {
		return
	}
	c.leave()
}

// Renewed reports this node's new gossip identity after Renew.
func (c *Core) Renewed(self Member) {
	c.self = self
	c.decide()
}

func (c *Core) emit(a ...Action) { c.out = append(c.out, a...) }

// leave closes the current ring and starts a recovery.
func (c *Core) leave() {
	c.emit(Leave{Epoch: c.epoch})
	if !c.failing {
		c.failing, c.failedAt, c.renewed = true, c.now, false
	}
	c.phase, c.reform = PhaseWaiting, false
	c.decide()
}

func (c *Core) train() {
	c.phase, c.failing = PhaseTraining, false
	c.emit(Train{Epoch: c.epoch, Step: c.step})
}

// decide is the waiting phase's rule: which ring to try, or whether to
// wait, knock, renew or give up.
func (c *Core) decide() {
	if c.phase != PhaseWaiting {
		return
	}
	first := len(c.ring) == 0 && !slices.ContainsFunc(c.all, func(m Member) bool { return m.Name != c.self.Name && m.State == StateTraining })
	if first { // the first ring: wait for Nodes members
		if len(c.live) < c.cfg.Nodes || !contains(c.live, c.self.Name) {
			return
		}
		ms := c.live[:c.cfg.Nodes]
		if !contains(ms, c.self.Name) {
			c.phase, c.err = PhaseFailed, fmt.Errorf("this node is not among the first %d members of the ring (more nodes joined than the ring's size)", c.cfg.Nodes)
			c.emit(Fail{Err: c.err})
			return
		}
		c.connect(ms, EpochOf(ms)) // the epoch a member that connected and failed retries with, from the same view
		return
	}
	if !contains(c.live, c.self.Name) {
		return
	}
	if len(c.ring) > 0 { // a member of a ring: quorum counts against it
		if c.failing && c.now-c.failedAt >= c.cfg.RejoinTicks {
			c.phase = PhaseFailed
			c.err = fmt.Errorf("%w: no ring of more than half of the last %d nodes (and at least %d) formed in time", ErrQuorumLost, len(c.ring), c.cfg.MinNodes)
			c.emit(Fail{Err: c.err})
			return
		}
		// Renew once, and again only after 8 times RenewTicks (the new name
		// may have been declared dead too, in a partition): a name that
		// keeps changing is one the others never form a ring with.
		again := !c.renewed || c.now-c.renewAt >= 8*c.cfg.RenewTicks
		if c.failing && again && c.now-c.failedAt >= c.cfg.RenewTicks && isForeign(c.all, c.epochs) {
			c.renewed, c.renewAt = true, c.now
			c.emit(Renew{})
			return
		}
		// A member that answers and gossips a ring of a higher term moved on
		// without this node: it is behind, and joins like a new node (that
		// member's own quorum rule guards the ring, which holds it; a ring
		// that is merely foreign may be older, and proves nothing).
		// Otherwise quorum counts against this node's last ring.
		behind := slices.ContainsFunc(c.live, func(m Member) bool { return m.Term > c.term })
		if q := Quorum(c.live, c.ring); !behind && (2*q <= len(c.ring) || len(c.live) < c.cfg.MinNodes) {
			c.emit(Rejoin{Members: c.ring})
			return
		}
	}
	c.connect(c.live, EpochOf(c.live))
}

func (c *Core) connect(ms []Member, epoch uint32) {
	again := epoch == c.epoch && c.epochs[epoch] && slices.Equal(ringNamesOf(c.ring), ringNamesOf(ms))
	c.cur, c.epoch, c.phase = slices.Clone(ms), epoch, PhaseConnecting
	if again {
		c.curTerm = c.term // the same ring again: its term stands (and gossip need not change)
	} else {
		c.curTerm = c.term
		for _, m := range ms {
			c.curTerm = max(c.curTerm, m.Term)
		}
		c.curTerm++
	}
	c.emit(Connect{Epoch: epoch, Members: c.cur, Rank: slices.IndexFunc(ms, func(m Member) bool { return m.Name == c.self.Name })})
}

// StateTraining is the State a member gossips once it trains.
const StateTraining = "training"

// Quorum counts the processes of view that were in ring (by process, so
// that one back under a renewed name still counts, and once). Joiners never
// count: otherwise nodes joining one side of a partition could give it a
// majority while the other side holds one too.
func Quorum(view, ring []Member) int {
	in := map[string]bool{}
	for _, m := range ring {
		in[m.Process()] = true
	}
	n := 0
	for _, m := range view {
		if in[m.Process()] {
			in[m.Process()] = false
			n++
		}
	}
	return n
}

// ForeignRing returns a member that gossips a ring this node was never in
// (mine: the epochs of its rings): the others evicted this node. The first
// ring's epoch, 0, is never foreign. The two sides of a partition each
// think the other dead, but only the majority can form a new ring, so only
// the minority sees one.
func ForeignRing(members []Member, mine map[uint32]bool) (Member, bool) {
	for _, m := range members {
		if m.Ring != 0 && !mine[m.Ring] {
			return m, true
		}
	}
	return Member{}, false
}

// EpochOf names the ring of a view: every node that forms a ring from the
// same view computes the same id, and connections and frames of any other
// ring are refused. It depends on the view alone, never on a node's own
// history: the last collective of a ring can complete on some nodes and fail
// on others, and nodes that then disagreed on "the previous epoch" would
// never meet again. (A ring re-formed from an identical view reuses the id;
// its connections are new, and stale ones are discarded at accept.)
func EpochOf(view []Member) uint32 {
	h := fnv.New32a()
	for _, m := range view {
		fmt.Fprintf(h, "%s|", m.Name)
	}
	if e := h.Sum32(); e != 0 {
		return e
	}
	return 1 // 0 is the first ring's
}

// ViewDigest is what the agreement compares: a digest of the members'
// names and data addresses, in ring order.
func ViewDigest(members []Member) uint64 {
	h := fnv.New64a()
	for _, m := range members {
		fmt.Fprintf(h, "%s|%s|", m.Name, m.Data)
	}
	return h.Sum64() >> 11 // exact as a float64, for an allreduce
}

func isForeign(ms []Member, mine map[uint32]bool) bool {
	_, ok := ForeignRing(ms, mine)
	return ok
}

func ringNamesOf(ms []Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

func contains(ms []Member, name string) bool {
	return slices.ContainsFunc(ms, func(m Member) bool { return m.Name == name })
}
