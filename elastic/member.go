package elastic

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"
)

// Meta is what a node tells the cluster about itself, gossiped as msgpack
// node metadata (memberlist allows 512 bytes).
type Meta struct {
	Data   string `msgpack:"a"`            // data-plane address, host:port
	Host   string `msgpack:"h"`            // host name as the hosts file has it
	Slot   int    `msgpack:"s"`            // process slot on that host
	Digest string `msgpack:"d"`            // run digest: hash of the job configuration
	Start  int64  `msgpack:"t"`            // process start, unix nanoseconds: the oldest member is the lowest
	State  string `msgpack:"st,omitempty"` // "training" once the node's step loop runs
	Ring   uint32 `msgpack:"r,omitempty"`  // epoch id of the ring the node is in (0: the first ring, or none)
	Term   uint32 `msgpack:"tm,omitempty"` // the node's term when it connected into that ring (see Core)
	Life   uint32 `msgpack:"l,omitempty"`  // how many times the process renewed its gossip name
}

// Member is one live node as this node sees it.
type Member struct {
	Name   string // unique per process start
	Gossip string // memberlist address
	Meta
}

// Process identifies the process behind a member: it stays the same when the
// process renews its gossip name.
func (m Member) Process() string { return fmt.Sprintf("%s|%d|%d", m.Host, m.Slot, m.Start) }

func (m Member) String() string {
	return fmt.Sprintf("%s (host %s slot %d, data %s)", m.Name, m.Host, m.Slot, m.Data)
}

// GossipLANConfig is memberlist's LAN preset tuned for training clusters.
// A dead node costs every survivor a stalled step, so gossip should notice
// it within about a second (memberlist's own preset: about 5.6 s). Sockets
// usually see a killed process first (at once) and cluster.step_timeout
// catches a stalled one; gossip is what tells a stopped or cut-off node from
// a slow one, and brings nodes back.
func GossipLANConfig() *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	c.ProbeInterval = 250 * time.Millisecond // default 1 s: 4x the probes (one small UDP packet each) for 4x faster detection
	c.ProbeTimeout = 150 * time.Millisecond  // default 500 ms: LAN round trips are far below; too low flags a busy node
	c.SuspicionMult = 2                      // default 4: a suspect is declared dead after 2 probe intervals (x log10 n); fewer confirmations from Lifeguard, so a node paused for half a second (GC, swap) can be evicted and must rejoin
	c.SuspicionMaxTimeoutMult = 3            // default 6: bounds how far a lack of confirmations stretches the suspicion
	c.GossipInterval = 100 * time.Millisecond
	c.PushPullInterval = 10 * time.Second // default 30 s: a healed partition merges sooner, at the price of a full-state exchange per interval
	return c
}

// GossipLocalConfig suits processes on one host (loopback, no packet loss):
// measured here, a killed process is noticed by gossip in 0.7-1.1 s.
func GossipLocalConfig() *memberlist.Config {
	c := memberlist.DefaultLocalConfig()
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.SuspicionMult = 2
	c.SuspicionMaxTimeoutMult = 3
	c.GossipInterval = 50 * time.Millisecond
	c.PushPullInterval = 5 * time.Second
	return c
}

// MemberConfig configures a node's gossip membership.
type MemberConfig struct {
	Name      string // unique per process start; empty = generated from host and slot
	Bind      string // gossip bind address host:port; port 0 picks one
	Advertise string // address peers use to reach this node's gossip (host or host:port); empty = Bind
	Cluster   string // memberlist label: other clusters' packets are dropped
	Secret    []byte // gossip is encrypted with a key derived from it
	Meta      Meta
	// Base is the memberlist preset to start from (GossipLANConfig or
	// GossipLocalConfig); nil means GossipLANConfig.
	Base   *memberlist.Config
	Logger *slog.Logger
}

// Membership is this node's view of the cluster.
type Membership struct {
	ml   *memberlist.Memberlist
	net  *cappedTransport // memberlist's network, with incoming streams capped
	cfg  MemberConfig     // as started, for Renew
	del  *delegate
	self Meta
	log  *slog.Logger
	left sync.Once
	pub  sync.Mutex // serializes UpdateNode
	name string     // memberlist's local node, as it started
	host string
	port int
	bump chan struct{} // a new metadata to gossip (see publisher)

	mu      sync.Mutex
	members map[string]Member // live members, kept from memberlist's events
	failed  map[string]failedMember
	refused map[string]string // node name -> why it was refused
	changed chan struct{}     // closed and replaced on every change
	gen     atomic.Uint64     // counts changes; cheap to poll every step
	stop    chan struct{}
	wg      sync.WaitGroup
}

// failedMember is a member gossip declared dead (not one that left).
type failedMember struct {
	gossip string
	since  time.Time
}

// Reconnect timing: how often to knock on failed members' doors, and for
// how long after they failed.
const (
	reconnectEvery = time.Second
	reconnectFor   = 3 * time.Minute
)

// reconnect periodically joins members that gossip declared dead, as Serf
// does on top of memberlist: after a partition heals, each side still holds
// the other dead, and neither talks to dead members by itself. A join
// exchanges full state, each side learns it was declared dead and refutes,
// and both come back alive.
func (m *Membership) reconnect() {
	defer m.wg.Done()
	t := time.NewTicker(reconnectEvery)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		var addrs []string
		m.mu.Lock()
		for name, f := range m.failed {
			if time.Since(f.since) > reconnectFor {
				delete(m.failed, name)
				continue
			}
			addrs = append(addrs, f.gossip)
		}
		m.mu.Unlock()
		if len(addrs) > 0 {
			_, _ = m.ml.Join(addrs) // best effort; a still-cut node just fails
		}
	}
}

// ErrConfigMismatch: another node runs a different job configuration.
var ErrConfigMismatch = errors.New("nodes run different job configurations")

// StartMembership starts gossip on cfg.Bind. Call Join next (with no
// addresses, this node starts a cluster of its own for others to join).
func StartMembership(cfg MemberConfig) (*Membership, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	meta, err := msgpack.Marshal(cfg.Meta)
	if err != nil {
		return nil, err
	}
	if len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("node metadata is %d bytes, memberlist allows %d: shorten the host name", len(meta), memberlist.MetaMaxSize)
	}
	m := &Membership{cfg: cfg, self: cfg.Meta, log: log, members: map[string]Member{}, failed: map[string]failedMember{},
		refused: map[string]string{}, changed: make(chan struct{}), stop: make(chan struct{}), bump: make(chan struct{}, 1)}
	mc := GossipLANConfig()
	if cfg.Base != nil {
		*mc = *cfg.Base // a copy: the caller's preset is never changed, so Renew can start from it again
	}
	mc.Name = cfg.Name
	if mc.Name == "" {
		mc.Name = fmt.Sprintf("%s-%d-%x", cfg.Meta.Host, cfg.Meta.Slot, time.Now().UnixNano()&0xffffff)
	}
	host, port, err := SplitHostPort(cfg.Bind, 7946)
	if err != nil {
		return nil, fmt.Errorf("gossip bind address: %w", err)
	}
	mc.BindAddr, mc.BindPort = host, port
	if cfg.Advertise != "" {
		ah, ap, err := SplitHostPort(cfg.Advertise, port)
		if err != nil {
			return nil, fmt.Errorf("gossip advertise address: %w", err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ah, ap
	}
	mc.Label = cfg.Cluster
	if len(cfg.Secret) > 0 {
		key := sha256.Sum256(append([]byte("dmlrun gossip key\x00"), cfg.Secret...))
		mc.SecretKey = key[:]
	}
	m.del = &delegate{meta: meta}
	mc.Delegate = m.del
	mc.Events = &events{m: m}
	mc.Alive = &alive{m: m}
	mc.Logger = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	mc.LogOutput = nil
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: mc.Logger})
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.Bind, err)
	}
	if mc.BindPort == 0 { // as memberlist does when it makes the transport itself
		mc.BindPort = nt.GetAutoBindPort()
		mc.AdvertisePort = mc.BindPort
	}
	m.net = newCappedTransport(nt)
	mc.Transport = m.net
	ml, err := memberlist.Create(mc)
	if err != nil {
		mc.Transport.Shutdown()
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.Bind, err)
	}
	m.ml = ml
	// memberlist updates its local node in place as it gossips: read its
	// name and address once, before anything else runs.
	ln := ml.LocalNode()
	m.name, m.host, m.port = ln.Name, ln.Addr.String(), int(ln.Port)
	m.wg.Add(2)
	go m.reconnect()
	go m.publisher()
	return m, nil
}

// Join contacts the nodes at addrs (gossip host:port), retrying until one
// answers or ctx ends, since they may not be up yet. Giving several addresses
// makes the whole view converge in milliseconds instead of seconds.
func (m *Membership) Join(ctx context.Context, addrs []string) error {
	join := slices.DeleteFunc(slices.Clone(addrs), func(a string) bool { return a == m.Addr() || a == "" })
	if len(join) == 0 {
		return nil
	}
	backoff := 50 * time.Millisecond
	for {
		n, err := m.ml.Join(join)
		if n > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("join the cluster via %s: %w (last error: %v)", strings.Join(join, ","), ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// SplitHostPort splits a bind address into host and port: "" is
// 0.0.0.0:defPort, a bare host takes defPort.
func SplitHostPort(addr string, defPort int) (string, int, error) {
	if addr == "" {
		return "0.0.0.0", defPort, nil
	}
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		// a bare host (or bracketed IPv6)
		return strings.Trim(addr, "[]"), defPort, nil
	}
	p, err := strconv.Atoi(ps)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return host, p, nil
}

// Addr is this node's gossip address (host:port), for others to join.
func (m *Membership) Addr() string { return net.JoinHostPort(m.host, strconv.Itoa(m.port)) }

// AdvertisedHost is the IP address memberlist advertises for this node (its
// choice of a private address when bound to all interfaces).
func (m *Membership) AdvertisedHost() string { return m.host }

// SetDataAddr changes the data-plane address in this node's metadata and
// gossips it.
func (m *Membership) SetDataAddr(addr string) error {
	m.self.Data = addr
	return m.publish(true)
}

// SetRingTerm tells the cluster which ring this node is in now and its term
// (see Meta.Term). It does not wait: the update spreads by gossip.
func (m *Membership) SetRingTerm(epoch, term uint32) error {
	m.self.Ring, m.self.Term = epoch, term
	return m.publish(false)
}

// Self is this node as the others see it (its name and metadata).
func (m *Membership) Self() Member {
	return Member{Name: m.Name(), Gossip: m.Addr(), Meta: m.self}
}

// SetTraining tells the cluster this node trains: a node that starts later
// then joins the running ring instead of waiting for a fresh one.
func (m *Membership) SetTraining() error {
	m.self.State = "training"
	return m.publish(false)
}

// Ring is the ring epoch this node last published (SetRingTerm).
func (m *Membership) Ring() uint32 { return m.self.Ring }

// Generation changes whenever the membership does.
func (m *Membership) Generation() uint64 { return m.gen.Load() }

// publish gossips this node's metadata. With wait it returns once the
// update went out (or after a second); without, it does not wait: the
// update spreads by gossip and by the periodic full-state exchange.
func (m *Membership) publish(wait bool) error {
	b, err := msgpack.Marshal(m.self)
	if err != nil {
		return err
	}
	m.del.mu.Lock()
	m.del.meta = b
	m.del.mu.Unlock()
	if !wait {
		select { // the publisher gossips the newest metadata
		case m.bump <- struct{}{}:
		default: // it has one pending already, and reads the newest
		}
		return nil
	}
	m.pub.Lock()
	defer m.pub.Unlock()
	return m.ml.UpdateNode(time.Second)
}

// publisher gossips metadata that publish(false) set, one update at a
// time (memberlist's UpdateNode is not safe for concurrent calls), the
// newest when several came meanwhile; it ends with Leave.
func (m *Membership) publisher() {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		case <-m.bump:
		}
		m.pub.Lock()
		_ = m.ml.UpdateNode(time.Second)
		m.pub.Unlock()
	}
}

// Name is this node's unique name.
func (m *Membership) Name() string { return m.name }

// Members returns the live members with valid metadata, in ring order:
// sorted by (host, slot), so that processes of one host sit side by side,
// then by name. A process seen under an old and a renewed name counts once,
// under the newest. (It reads a copy kept from memberlist's events: the nodes
// memberlist's own Members returns are updated in place as they are read.)
func (m *Membership) Members() []Member {
	m.mu.Lock()
	newest := make(map[string]Member, len(m.members))
	for _, x := range m.members {
		if y, ok := newest[x.Process()]; !ok || x.Life > y.Life || (x.Life == y.Life && x.Name < y.Name) {
			newest[x.Process()] = x
		}
	}
	m.mu.Unlock()
	out := make([]Member, 0, len(newest))
	for _, x := range newest {
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b Member) int {
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		if a.Slot != b.Slot {
			return a.Slot - b.Slot
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// track records a node's latest state from a memberlist event (which runs
// under memberlist's lock, so reading the node here is safe).
func (m *Membership) track(n *memberlist.Node, alive bool) {
	var meta Meta
	ok := alive && msgpack.Unmarshal(n.Meta, &meta) == nil && meta.Digest == m.self.Digest && meta.Data != ""
	gossip := net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	m.mu.Lock()
	if ok {
		m.members[n.Name] = Member{Name: n.Name, Gossip: gossip, Meta: meta}
		delete(m.failed, n.Name)
	} else {
		if _, was := m.members[n.Name]; was && n.State == memberlist.StateDead {
			m.failed[n.Name] = failedMember{gossip: gossip, since: time.Now()}
		}
		delete(m.members, n.Name)
	}
	m.mu.Unlock()
	m.notify()
}

// WaitFor waits until n members (this one included) are alive. It fails at
// once if a node running another job configuration tried to join, and at
// ctx's end with an error listing who is present and how many are missing.
func (m *Membership) WaitFor(ctx context.Context, n int) ([]Member, error) {
	for {
		m.mu.Lock()
		changed := m.changed
		m.mu.Unlock()
		if err := m.Refused(); err != nil {
			return nil, err
		}
		ms := m.Members()
		if len(ms) >= n {
			return ms, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			names := make([]string, len(ms))
			for i, x := range ms {
				names[i] = x.String()
			}
			return nil, fmt.Errorf("waiting for %d nodes: only %d joined (%s); %d missing: %w",
				n, len(ms), strings.Join(names, ", "), n-len(ms), ctx.Err())
		case <-time.After(time.Second): // re-check state changes that send no event
		}
	}
}

// Refused is an ErrConfigMismatch naming the nodes of another job
// configuration that tried to join, or nil.
func (m *Membership) Refused() error {
	m.mu.Lock()
	var refused []string
	for name, why := range m.refused {
		refused = append(refused, name+": "+why)
	}
	m.mu.Unlock()
	if len(refused) == 0 {
		return nil
	}
	slices.Sort(refused)
	return fmt.Errorf("%w: refused %s", ErrConfigMismatch, strings.Join(refused, "; "))
}

// WaitChange returns when the membership changes, ctx ends, or after d.
func (m *Membership) WaitChange(ctx context.Context, d time.Duration) {
	m.mu.Lock()
	ch := m.changed
	m.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-ctx.Done():
	case <-t.C:
	}
}

// Leave tells the others this node is going (they notice in well under a
// second) and stops gossip. Calls after the first do nothing.
func (m *Membership) Leave(timeout time.Duration) {
	m.left.Do(func() {
		close(m.stop)
		m.wg.Wait()
		_ = m.ml.Leave(timeout)
		_ = m.ml.Shutdown()
	})
}

// Renew leaves the cluster under this node's name and comes back as a new
// member: a fresh name, the same gossip address (when it is still free) and
// metadata, joining the nodes at join. The others see the new name as alive
// at once, where a name they hold dead can take many seconds to revive. m is
// unusable afterwards; use the returned Membership.
func (m *Membership) Renew(ctx context.Context, join []string) (*Membership, error) {
	cfg := m.cfg
	cfg.Name = "" // a fresh one
	cfg.Meta = m.self
	cfg.Meta.Life++
	host, port, err := SplitHostPort(cfg.Bind, 7946)
	if err != nil {
		return nil, err
	}
	if port == 0 { // keep the port the OS chose, where others look for us
		port = m.port
	}
	m.Leave(500 * time.Millisecond)
	cfg.Bind = net.JoinHostPort(host, strconv.Itoa(port))
	n, err := StartMembership(cfg)
	if err != nil { // the port is not free yet (or taken): any port will do, we join the others ourselves
		cfg.Bind = net.JoinHostPort(host, "0")
		if cfg.Advertise != "" {
			ah, _, _ := SplitHostPort(cfg.Advertise, 0)
			cfg.Advertise = ah
		}
		if n, err = StartMembership(cfg); err != nil {
			return nil, fmt.Errorf("rejoin the cluster under a new name: %w", err)
		}
	}
	if err := n.Join(ctx, join); err != nil {
		n.log.Debug("rejoin: no member answered yet", "err", err) // the caller keeps knocking
	}
	return n, nil
}

// Knock asks the gossip of the members ms to take this node back (it
// refutes being dead: it may be the one that was cut off); quick and best
// effort.
func (m *Membership) Knock(ctx context.Context, ms []Member) {
	var addrs []string
	for _, x := range ms {
		if x.Name != m.Name() {
			addrs = append(addrs, x.Gossip)
		}
	}
	jctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_ = m.Join(jctx, addrs)
}

func (m *Membership) notify() {
	m.gen.Add(1)
	m.mu.Lock()
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
}

type delegate struct {
	mu   sync.Mutex
	meta []byte
}

func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.meta
}
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

type events struct{ m *Membership }

func (e *events) NotifyJoin(n *memberlist.Node)   { e.m.track(n, true) }
func (e *events) NotifyLeave(n *memberlist.Node)  { e.m.track(n, false) }
func (e *events) NotifyUpdate(n *memberlist.Node) { e.m.track(n, true) }

// alive refuses peers that run another job: memberlist then ignores them.
type alive struct{ m *Membership }

func (a *alive) NotifyAlive(peer *memberlist.Node) error {
	var meta Meta
	if err := msgpack.Unmarshal(peer.Meta, &meta); err != nil {
		return fmt.Errorf("node %s sent unreadable metadata: %w", peer.Name, err)
	}
	if meta.Digest != a.m.self.Digest {
		why := fmt.Sprintf("node at %s (host %s slot %d) runs job configuration %.12s, this node runs %.12s: every node must use the same train.yaml",
			peer.Address(), meta.Host, meta.Slot, meta.Digest, a.m.self.Digest)
		a.m.mu.Lock()
		_, seen := a.m.refused[peer.Name]
		a.m.refused[peer.Name] = why
		a.m.mu.Unlock()
		if !seen {
			a.m.log.Error("refused a node with a different configuration", "node", peer.Name, "reason", why)
			a.m.notify()
		}
		return errors.New(why)
	}
	return nil
}
