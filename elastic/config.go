package elastic

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/dmlrun/dmlrun/ring"
	"github.com/dmlrun/dmlrun/transport"
)

// Config configures a Group: who the node is, how it finds the others,
// and the timing of failure handling. Start from a preset and change what
// differs:
//
//	cfg := elastic.DefaultLANConfig()
//	cfg.Cluster, cfg.Secret, cfg.Nodes = "kmeans", key, 4
//	cfg.Bind, cfg.Join = "10.0.0.5:7946", []string{"10.0.0.1:7946"}
type Config struct {
	// Cluster names the cluster: gossip of other clusters is dropped and
	// their data-plane handshakes are refused.
	Cluster string
	// Secret authenticates (and encrypts) gossip and authenticates every
	// data-plane connection; every node of the cluster needs the same one.
	Secret []byte
	// Job identifies what the nodes run (for instance a hash of the
	// application's configuration): members with another Job are refused.
	Job string
	// Nodes is the size of the first ring: Run waits for that many members.
	Nodes int
	// MinNodes: a ring trains only with at least this many members (and
	// with more than half of the processes of the last ring).
	MinNodes int
	// Bind is the gossip address, host:port (port 0 picks one; "" is
	// 0.0.0.0:7946); the data plane listens on the same host, on a port of
	// its own. Advertise is the address the others should use, when it
	// differs (NAT, a 0.0.0.0 bind).
	Bind, Advertise string
	// Join lists gossip addresses of members to join (none: this node
	// starts the cluster).
	Join []string
	// Host and Slot place the node in the ring, which is sorted by (Host,
	// Slot): processes of one host sit side by side. Host defaults to the
	// bind address.
	Host string
	Slot int
	// Gossip is the memberlist preset (GossipLANConfig or
	// GossipLocalConfig).
	Gossip *memberlist.Config
	// Protection is the data plane's frame protection.
	Protection transport.Protection
	// StepTimeout bounds a collective whose context has no deadline: a dead
	// or stalled peer fails the step by then.
	StepTimeout time.Duration
	// JoinTimeout bounds the wait for the first ring, and a joiner's wait to
	// be let in.
	JoinTimeout time.Duration
	// RejoinTimeout is how long a node without quorum keeps trying before
	// Run fails with ErrQuorumLost.
	RejoinTimeout time.Duration
	// RenewAfter is how long a recovery must have failed before a node that
	// the others evicted comes back under a new gossip name.
	RenewAfter time.Duration
	// Tick is the period of the core's clock.
	Tick time.Duration
	// StallWarn, when positive, is how long a collective waits on one peer
	// before OnStall is told (once per stalled exchange, on the goroutine
	// of the collective): a stall inspector's warning, long before
	// StepTimeout fails the step.
	StallWarn time.Duration
	OnStall   func(transport.Stall)
	// Tracer, when set, hears every collective of every ring (ring.Tracer).
	Tracer ring.Tracer
	// Events, when set, is told of the ring changes that the Group
	// otherwise logs itself (it then logs them at debug level only).
	Events Events
	// Logger receives the Group's lines; nil is slog.Default().
	Logger *slog.Logger
}

// Events hears of a Group's ring changes, for an application's own logs,
// metrics and displays. Run calls it on its own goroutine; it must not
// block or run collectives.
type Events interface {
	// RingLeft: this node left the ring it stepped in, with its state at
	// step. cause is the ring's failure (a RingError) and wraps
	// ErrMemberJoined when a member outside the ring waits to be let in
	// (then it may be no failure at all: the ring is left at a step
	// boundary to grow).
	RingLeft(step int, cause error)
	// RingFormed: this node is rank r.Rank of a ring whose members agreed
	// on it and all hold the state of step r.Step; Resize follows.
	RingFormed(r Ring)
}

// Ring describes a ring that formed.
type Ring struct {
	Epoch   uint32
	Members []Member // in rank order
	Rank    int
	Step    int
	// Root is the rank that sent its state to the ranks in Behind (none:
	// every member held the same state).
	Root   int
	Behind []int
}

// DefaultLANConfig suits nodes on a local network.
func DefaultLANConfig() Config {
	return Config{
		Cluster:  "elastic",
		MinNodes: 1,
		Gossip:   GossipLANConfig(), // a dead node is noticed in about a second (memberlist's preset: 5.6 s)
		// A collective that has not finished in 30 s has a stalled peer: far
		// above any step of a LAN job, low enough that a stall is not a hang.
		StepTimeout: 30 * time.Second,
		JoinTimeout: 60 * time.Second, // nodes started by hand or over ssh arrive within seconds
		// A partition or a reboot of a minority's hosts commonly heals
		// within a minute; beyond that, failing lets an operator see it.
		RejoinTimeout: 60 * time.Second,
		// A recovery takes milliseconds, and most evicted nodes come back
		// by refuting their death in gossip: renewing at once would make
		// every such return a second change of the ring.
		RenewAfter: 2 * time.Second,
		// Decisions wait on connections and gossip, not on the tick; 50 ms
		// keeps timeouts accurate to a few percent at no cost.
		Tick: 50 * time.Millisecond,
	}
}

// DefaultLocalConfig suits processes on one host (loopback).
func DefaultLocalConfig() Config {
	c := DefaultLANConfig()
	c.Gossip = GossipLocalConfig() // loopback loses no packets: probe faster (a kill is noticed in 0.7-1.1 s)
	c.Bind = "127.0.0.1:0"         // every process on its own port
	c.StepTimeout = 10 * time.Second
	return c
}

// Validate names the first bad field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("elastic: Config.%s: "+format, append([]any{field}, args...)...))
	}
	if c.Cluster == "" {
		bad("Cluster", "empty: name the cluster")
	}
	if c.Nodes < 1 {
		bad("Nodes", "%d: the first ring needs at least 1 member", c.Nodes)
	}
	if c.MinNodes < 1 || (c.Nodes >= 1 && c.MinNodes > c.Nodes) {
		bad("MinNodes", "%d: want 1 to Nodes (%d)", c.MinNodes, c.Nodes)
	}
	if c.Gossip == nil {
		bad("Gossip", "nil: start from DefaultLANConfig or DefaultLocalConfig")
	}
	for _, d := range []struct {
		field string
		d     time.Duration
	}{{"StepTimeout", c.StepTimeout}, {"JoinTimeout", c.JoinTimeout}, {"RejoinTimeout", c.RejoinTimeout}, {"RenewAfter", c.RenewAfter}, {"Tick", c.Tick}} {
		if d.d <= 0 {
			bad(d.field, "%v: want a positive duration", d.d)
		}
	}
	if c.Tick > 0 && c.RejoinTimeout > 0 && c.RejoinTimeout < 2*c.Tick {
		bad("RejoinTimeout", "%v is shorter than two Ticks (%v)", c.RejoinTimeout, c.Tick)
	}
	if _, _, err := SplitHostPort(c.Bind, 7946); err != nil {
		bad("Bind", "%v", err)
	}
	return errors.Join(errs...)
}
