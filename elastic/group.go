package elastic

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dmlrun/dmlrun/ring"
	"github.com/dmlrun/dmlrun/transport"
)

// State is what an application hands the runtime: its step counter, its
// state as bytes for a node that is behind or joins, and a callback to
// re-shard its data when the ring changes.
type State interface {
	// Step is how many steps the state holds (-1: none yet, a node that
	// can only join and receive the state).
	Step() int
	// Encode returns the state, for the members behind.
	Encode() ([]byte, error)
	// Decode replaces the state with another member's, at step.
	Decode(step int, b []byte) error
	// Resize is called once the ring is formed and every member holds the
	// same state, before the first step in it: the application takes its
	// share of the data for rank c.Rank() of c.Size(). It may run
	// collectives on c (a RingError makes Run re-form the ring).
	Resize(ctx context.Context, c *Comm) error
}

// ErrStop, returned by a step function, ends Run once every member has
// reached it (the state is then final on all of them).
var ErrStop = errors.New("elastic: stop")

// Group is this node's membership of an elastic cluster: gossip, the data
// plane's listener, and (inside Run) the current ring.
type Group struct {
	cfg  Config
	log  *slog.Logger
	tcfg transport.Config
	ln   *transport.Listener
	mem  *Membership
	mu   sync.Mutex // guards mem against Close during a renewal
}

// Start starts gossip and the data plane for cfg and joins the cluster
// (cfg.Join; none: this node starts it). Run then forms rings and steps.
func Start(ctx context.Context, cfg Config) (*Group, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	tcfg := transport.Config{Cluster: cfg.Cluster, RunDigest: cfg.Job, Secret: cfg.Secret, Logger: log, Protection: cfg.Protection,
		StallWarn: cfg.StallWarn, OnStall: cfg.OnStall}
	if tcfg.RunDigest == "" {
		tcfg.RunDigest = "elastic"
	}
	bindHost, _, err := SplitHostPort(cfg.Bind, 7946)
	if err != nil {
		return nil, err
	}
	ln, err := transport.Listen(net.JoinHostPort(bindHost, "0"), tcfg)
	if err != nil {
		return nil, err
	}
	host := cfg.Host
	if host == "" { // the bind address, if it names one, else the host name
		if ip := net.ParseIP(bindHost); ip != nil && !ip.IsUnspecified() {
			host = bindHost
		} else {
			host, _ = os.Hostname()
		}
	}
	mem, err := StartMembership(MemberConfig{Bind: cfg.Bind, Advertise: cfg.Advertise, Cluster: cfg.Cluster, Secret: cfg.Secret, Base: cfg.Gossip, Logger: log,
		Meta: Meta{Host: host, Slot: cfg.Slot, Digest: tcfg.RunDigest, Start: time.Now().UnixNano()}})
	if err != nil {
		ln.Close()
		return nil, err
	}
	g := &Group{cfg: cfg, log: log, tcfg: tcfg, ln: ln, mem: mem}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if err := mem.SetDataAddr(net.JoinHostPort(mem.AdvertisedHost(), port)); err != nil {
		g.Close()
		return nil, err
	}
	g.log = log.With("node", mem.Name())
	if err := g.Join(ctx, cfg.Join); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// Join contacts the members at addrs (gossip host:port; Start joins
// Config.Join), retrying until one answers or JoinTimeout passes: they may
// not be up yet. A program that learns the addresses only once it listens
// (a launcher's rendezvous, given Addr) starts with no Join and calls it.
func (g *Group) Join(ctx context.Context, addrs []string) error {
	jctx, cancel := context.WithTimeout(ctx, g.cfg.JoinTimeout)
	defer cancel()
	return g.membership().Join(jctx, addrs)
}

// Addr is this node's gossip address, for others to Join.
func (g *Group) Addr() string { return g.membership().Addr() }

// DataAddr is this node's data-plane address, as it is gossiped.
func (g *Group) DataAddr() string { return g.membership().Self().Data }

// Name is this node's gossip name (a new one after the others evicted it).
func (g *Group) Name() string { return g.membership().Name() }

func (g *Group) membership() *Membership {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mem
}

// Close leaves the cluster (the others notice at once) and stops the data
// plane.
func (g *Group) Close() error {
	g.membership().Leave(200 * time.Millisecond)
	return g.ln.Close()
}

// Run runs step in rings of the cluster until step returns ErrStop on every
// member. It forms the first ring of cfg.Nodes members (or joins a running
// one), brings every member to the same state (State.Encode and Decode),
// lets the application re-shard (State.Resize), and calls step over and
// over; step reports a done step by advancing State.Step. After a failed
// collective (a RingError) it re-forms the ring from the members that
// answer, if they hold a majority of the last ring, syncs the state of
// those behind, and calls step again: the failed step is redone. Members
// that appear are let in at a step boundary. A node that cannot get a
// majority back within cfg.RejoinTimeout fails with ErrQuorumLost; any
// other error of step ends Run with that error.
func (g *Group) Run(ctx context.Context, st State, step func(ctx context.Context, c *Comm) error) error {
	cfg := g.cfg
	d := &driver{g: g, st: st, step: step, last: time.Now(),
		core: NewCore(CoreConfig{Self: g.membership().Self(), Nodes: cfg.Nodes, MinNodes: cfg.MinNodes,
			RejoinTicks: int64(cfg.RejoinTimeout / cfg.Tick), RenewTicks: int64(cfg.RenewAfter / cfg.Tick)})}
	defer d.close()
	d.core.Start(st.Step())
	d.view(ctx)
	joinBy := time.Now().Add(cfg.JoinTimeout)
	var knocked time.Time
	for {
		acts := d.core.Ready()
		for _, a := range acts {
			if err := d.do(ctx, a); err != nil {
				return err
			}
			if d.done {
				return nil
			}
		}
		if d.core.Phase() == PhaseFailed {
			return d.core.Err()
		}
		if len(acts) > 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		mem := g.membership()
		if !d.formed {
			if err := mem.Refused(); err != nil { // a node of another job tried to join: a mistake to report at once
				return err
			}
			if time.Now().After(joinBy) {
				return d.notFormed()
			}
		}
		if !d.formed && time.Since(knocked) > 250*time.Millisecond {
			// Until the first ring forms, a full-state exchange with every
			// known member: gossip alone can take until the next push-pull
			// (seconds) to tell a member about one that joined another.
			mem.Knock(ctx, mem.Members())
			knocked = time.Now()
		}
		gen := mem.Generation()
		mem.WaitChange(ctx, cfg.Tick)
		d.tick()
		if mem.Generation() != gen || d.core.Phase() == PhaseWaiting { // waiting: who answers may change without gossip
			d.view(ctx)
		}
	}
}

// driver carries out a Core's actions for one Run.
type driver struct {
	g      *Group
	core   *Core
	st     State
	step   func(ctx context.Context, c *Comm) error
	comm   *Comm
	epoch  uint32
	ring   []Member
	sync   Sync // the last Sync of the ring being formed (Root -1: none)
	wait   Backoff
	last   time.Time // of the last tick
	formed bool      // a ring formed once
	// unwatch ends the hang-up watch of the ring being formed (nil: none);
	// it runs from Connect to Train.
	unwatch func()
	done    bool
}

func (d *driver) close() {
	d.stopWatch()
	if d.comm != nil {
		d.comm.Close()
		d.comm = nil
	}
}

// stopWatch ends the hang-up watch of the ring being formed.
func (d *driver) stopWatch() {
	if d.unwatch != nil {
		d.unwatch()
		d.unwatch = nil
	}
}

// tick advances the core's clock by the ticks that passed.
func (d *driver) tick() {
	for n := time.Since(d.last) / d.g.cfg.Tick; n > 0; n-- {
		d.last = d.last.Add(d.g.cfg.Tick)
		d.core.Tick()
	}
}

// view hands the core the gossip members and those whose data plane answers.
func (d *driver) view(ctx context.Context) {
	mem := d.g.membership()
	all := mem.Members()
	live := LiveMembers(ctx, all, mem.Name())
	d.core.View(all, live)
}

// LiveMembers returns the members of ms (in their order) whose data plane
// accepts a connection, self (a name) included without asking: a killed
// process refuses at once, a stopped or cut-off one does not answer within
// the probe timeout (300 ms).
func LiveMembers(ctx context.Context, ms []Member, self string) []Member {
	alive := make([]bool, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		if m.Name == self {
			alive[i] = true
			continue
		}
		wg.Go(func() {
			dl := net.Dialer{Timeout: 300 * time.Millisecond}
			if c, err := dl.DialContext(ctx, "tcp", m.Data); err == nil {
				c.Close()
				alive[i] = true
			}
		})
	}
	wg.Wait()
	var out []Member
	for i, m := range ms {
		if alive[i] {
			out = append(out, m)
		}
	}
	return out
}

// do carries out one action.
func (d *driver) do(ctx context.Context, a Action) error {
	g := d.g
	g.log.Debug("elastic action", "action", fmt.Sprintf("%T %+v", a, a))
	switch a := a.(type) {
	case Connect:
		// No pause before a retry: an attempt that follows another of the
		// same epoch cannot take up the last one's connections, since a link
		// is up only once both of its ends claim it in their current attempt
		// (transport.Connect).
		d.close()
		addrs := make([]string, len(a.Members))
		for i, m := range a.Members {
			addrs[i] = m.Data
		}
		cctx, cancel := context.WithTimeout(ctx, d.wait.Next())
		c, err := NewComm(cctx, g.ln, CommConfig{Transport: g.tcfg, Epoch: a.Epoch, Timeout: g.cfg.StepTimeout,
			Ring: ring.Options{Tracer: g.cfg.Tracer}, Members: a.Members}, a.Rank, addrs)
		cancel()
		if err == nil {
			d.comm, d.epoch, d.ring, d.sync = c, a.Epoch, a.Members, Sync{Root: -1}
			// Until the ring trains, a member that gives up this attempt
			// (and closes its links) fails it here at once, whichever link
			// the agreement or the state transfer waits on.
			d.unwatch = c.watchHangup()
		} else {
			d.view(ctx) // the next attempt starts from a fresh view
		}
		d.core.Connected(a.Epoch, err)
	case Publish:
		if mem := g.membership(); mem.Ring() != a.Ring || mem.Self().Term != a.Term { // gossip only what changed
			return mem.SetRingTerm(a.Ring, a.Term)
		}
	case Agree:
		steps, digests, err := d.agree(ctx, a)
		if err != nil {
			g.log.Debug("agreement failed", "epoch", a.Epoch, "err", err)
			d.view(ctx)
		}
		d.core.Agreed(a.Epoch, digests, steps, err)
	case Sync:
		d.sync = a
		err := d.transfer(ctx, a)
		if err != nil {
			d.view(ctx)
		}
		d.core.Synced(a.Epoch, a.Step, err)
	case Train:
		// Training: a member that finished a collective may leave (to let
		// a node in, or at the end) while the others still finish it.
		d.stopWatch()
		return d.train(ctx, a)
	case Leave:
		d.close()
	case Rejoin:
		d.g.membership().Knock(ctx, a.Members)
	case Renew:
		return d.renew(ctx)
	case Fail:
		return a.Err
	}
	return nil
}

// agree runs the agreement: every rank's digest and step, by one
// allreduce of a vector where each rank fills its own two slots.
func (d *driver) agree(ctx context.Context, a Agree) ([]int, []uint64, error) {
	n, r := d.comm.Size(), d.comm.Rank()
	v := make([]float64, 2*n)
	v[2*r], v[2*r+1] = float64(a.Digest), float64(d.st.Step())
	// The agreement has the attempt's deadline too, counted from when this
	// node is connected: members whose attempts began at different moments
	// still meet, and one that gave up on this attempt (its connect timed
	// out as the others' completed) does not hold the others for a
	// StepTimeout.
	actx, cancel := context.WithTimeout(ctx, d.wait.Last())
	defer cancel()
	if err := d.comm.AllReduce(actx, ring.Sum, v); err != nil {
		return nil, nil, err
	}
	steps, digests := make([]int, n), make([]uint64, n)
	for i := range n {
		digests[i], steps[i] = uint64(v[2*i]), int(v[2*i+1])
	}
	return steps, digests, nil
}

// transfer sends the root's state to every rank behind: its length, then
// its bytes packed eight to a float64.
func (d *driver) transfer(ctx context.Context, a Sync) error {
	c := d.comm
	var b []byte
	if c.Rank() == a.Root {
		var err error
		if b, err = d.st.Encode(); err != nil {
			return fmt.Errorf("encoding the state for the members behind: %w", err)
		}
	}
	n := []float64{float64(len(b))}
	if err := c.Broadcast(ctx, a.Root, n); err != nil {
		return err
	}
	words := make([]float64, (int(n[0])+7)/8)
	if c.Rank() == a.Root {
		packBytes(words, b)
	}
	if err := c.Broadcast(ctx, a.Root, words); err != nil {
		return err
	}
	for _, r := range a.Behind {
		if r == c.Rank() {
			if err := d.st.Decode(a.Step, unpackBytes(words, int(n[0]))); err != nil {
				return fmt.Errorf("state from rank %d at step %d: %w", a.Root, a.Step, err)
			}
		}
	}
	return nil
}

func packBytes(dst []float64, b []byte) {
	var w [8]byte
	for i := range dst {
		clear(w[:])
		copy(w[:], b[min(8*i, len(b)):])
		dst[i] = math.Float64frombits(binary.LittleEndian.Uint64(w[:]))
	}
}

func unpackBytes(src []float64, n int) []byte {
	b := make([]byte, 8*len(src))
	for i, x := range src {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return b[:n]
}

// train re-shards and steps until the ring fails, a member must be let
// in, or the application stops.
func (d *driver) train(ctx context.Context, a Train) error {
	g, c := d.g, d.comm
	level := g.log.Debug
	if c.Rank() == 0 && g.cfg.Events == nil {
		level = g.log.Info
	}
	if ev := g.cfg.Events; ev != nil {
		ev.RingFormed(Ring{Epoch: a.Epoch, Members: d.ring, Rank: c.Rank(), Step: a.Step, Root: d.sync.Root, Behind: d.sync.Behind})
	}
	if err := d.st.Resize(ctx, c); err != nil {
		if IsRingFailure(err) {
			d.view(ctx)
			d.core.RingFailed(err)
			return nil
		}
		return err
	}
	mem := g.membership()
	if err := mem.SetTraining(); err != nil {
		return err
	}
	what := "ring formed"
	if d.formed {
		what = "ring re-formed"
	}
	level(what, "size", c.Size(), "rank", c.Rank(), "epoch", a.Epoch, "step", a.Step, "ring", ringNames(d.ring))
	d.formed, d.wait = true, Backoff{}
	seen := mem.Generation()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := d.step(ctx, c)
		if errors.Is(err, ErrStop) { // every member stops at this step: agree that all got here
			if err = c.Barrier(ctx); err == nil {
				d.done = true
				return nil
			}
		}
		if err != nil {
			if !IsRingFailure(err) {
				return err
			}
			d.view(ctx)
			if d.core.Outsider() { // most likely a member that left the ring to let it in
				err = RingFailure(fmt.Errorf("%w (%w)", ErrMemberJoined, err))
			}
			if g.cfg.Events == nil {
				g.log.Info("ring failed: re-forming", "step", d.st.Step(), "cause", err)
			} else {
				g.cfg.Events.RingLeft(d.st.Step(), err)
			}
			d.core.RingFailed(err)
			return nil
		}
		d.core.Stepped(d.st.Step())
		if gen := mem.Generation(); gen != seen {
			seen = gen
			d.view(ctx)
		}
		d.tick()
		if d.core.Phase() != PhaseTraining { // a member to let in: the core left the ring
			if ev := g.cfg.Events; ev != nil {
				ev.RingLeft(d.st.Step(), RingFailure(ErrMemberJoined))
			}
			return nil
		}
	}
}

// renew comes back under a fresh gossip name (the others hold the old one
// dead), joining the members of the last ring.
func (d *driver) renew(ctx context.Context) error {
	g := d.g
	old := g.membership()
	var addrs []string
	for _, m := range d.core.ring {
		if m.Name != old.Name() {
			addrs = append(addrs, m.Gossip)
		}
	}
	jctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	mem, err := old.Renew(jctx, addrs)
	if err != nil {
		return fmt.Errorf("%w, and cannot rejoin under a new name: %w", ErrEvicted, err)
	}
	g.mu.Lock()
	g.mem = mem
	g.mu.Unlock()
	g.log = g.log.With("node", mem.Name())
	g.log.Warn("the others evicted this node (it was stopped or cut off): rejoining as a new member", "old name", old.Name())
	d.core.Renewed(mem.Self())
	return nil
}

// notFormed is Run's error when no first ring formed within JoinTimeout.
func (d *driver) notFormed() error {
	ms := d.g.membership().Members()
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.String()
	}
	if len(ms) >= d.g.cfg.Nodes {
		return fmt.Errorf("elastic: no ring formed within %v, with %d members present (%s)", d.g.cfg.JoinTimeout, len(ms), strings.Join(names, ", "))
	}
	return fmt.Errorf("elastic: no ring formed within %v: waiting for %d nodes: only %d joined (%s); %d missing",
		d.g.cfg.JoinTimeout, d.g.cfg.Nodes, len(ms), strings.Join(names, ", "), d.g.cfg.Nodes-len(ms))
}

func ringNames(ms []Member) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = fmt.Sprintf("%s/%d", m.Host, m.Slot)
	}
	return strings.Join(s, " -> ")
}

// Backoff is the connect deadline of successive ring attempts. An attempt
// whose view is stale (a peer that just died still accepted the probe) fails
// at its deadline: start short, back off to 2 s. A random part keeps nodes
// whose attempts fail together from starting each next one in lockstep.
type Backoff struct{ d time.Duration }

// Next is the deadline of the next attempt.
func (b *Backoff) Next() time.Duration {
	b.d = min(max(2*b.d, 250*time.Millisecond), 2*time.Second)
	return b.d/2 + rand.N(b.d/2)
}

// Last is the back-off of the last attempt (0 before the first).
func (b *Backoff) Last() time.Duration { return b.d }
