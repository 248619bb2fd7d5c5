package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config is what every connection of one run shares.
type Config struct {
	// Cluster names the cluster; a peer of another cluster is refused.
	Cluster string
	// RunDigest identifies the job (a hash of its configuration); a peer
	// running another job is refused.
	RunDigest string
	// Secret is the shared cluster secret behind the HMAC challenge-response.
	Secret []byte
	// Protection guards the frames after the handshake: ProtectAuto (the
	// zero value: a MAC on every link but loopback ones), ProtectNone,
	// ProtectMAC or ProtectEncrypt. A server refuses a dialer that offers
	// less than it requires on that link.
	Protection Protection
	// HandshakeTimeout bounds each handshake, so that a silent client ties up
	// nothing for long. 0 means 5 s.
	HandshakeTimeout time.Duration
	// Spin is how many non-blocking attempts (each followed by sched_yield)
	// an Exchange makes before it parks on the netpoller. Spinning cuts
	// small-message latency (about 20 us to 7 us for 8 bytes, n=2 on loopback)
	// but burns CPU while waiting for a slow peer. 0 means 100; -1 disables.
	Spin int
	// MaxPendingHandshakes bounds the connections a Listener holds that have
	// not finished the handshake; the excess is closed at once. 0 means 64;
	// -1 means no bound.
	MaxPendingHandshakes int
	// MaxPendingPerIP bounds them per source IP address. 0 means 32 (every
	// process of a host may dial one node at once, and -np puts them all on
	// 127.0.0.1); -1 means no bound.
	MaxPendingPerIP int
	// RefusalLogInterval rate-limits the WARN lines of refused connections:
	// at most one per source IP per interval, which says how many refusals it
	// stands for. 0 means 10 s; -1 logs every refusal.
	RefusalLogInterval time.Duration
	// StallWarn, when positive, is how long an Exchange waits on a peer
	// before it calls OnStall (once per Exchange): a stall inspector's
	// warning, long before the deadline fails the exchange.
	StallWarn time.Duration
	// OnStall is told which peer an Exchange has been waiting on, for how
	// long and for what. It runs on the goroutine of the Exchange.
	OnStall func(Stall)
	// Logger receives refusals and connection events; nil means slog.Default().
	Logger *slog.Logger
}

// Stall describes an Exchange that has waited StallWarn on a peer.
type Stall struct {
	Peer   int    // the rank waited on
	Dir    string // "recv from" or "send to"
	Waited time.Duration
	Seq    uint64 // the exchange's sequence number (the collective)
	Chunk  uint32
}

const (
	defaultHandshakeTimeout = 5 * time.Second
	defaultSpin             = 100
	defaultMaxPending       = 64
	defaultMaxPendingPerIP  = 32
	defaultRefusalLogEvery  = 10 * time.Second
)

// Validate reports the first missing or bad field.
func (c *Config) Validate() error {
	switch {
	case len(c.Secret) == 0:
		return ErrNoSecret
	case c.HandshakeTimeout < 0:
		return errors.New("transport config: HandshakeTimeout is negative")
	case c.Protection > ProtectEncrypt:
		return fmt.Errorf("transport config: Protection %v", c.Protection)
	case len(c.Cluster) > 255:
		return errors.New("transport config: Cluster is longer than 255 bytes")
	}
	return nil
}

func (c *Config) handshakeTimeout() time.Duration {
	if c.HandshakeTimeout > 0 {
		return c.HandshakeTimeout
	}
	return defaultHandshakeTimeout
}

// limit maps a bound's config value to its effective value; -1 (any
// negative value) means no bound, returned as 0.
func limit(v, def int) int {
	switch {
	case v < 0:
		return 0
	case v == 0:
		return def
	}
	return v
}

func (c *Config) maxPending() int      { return limit(c.MaxPendingHandshakes, defaultMaxPending) }
func (c *Config) maxPendingPerIP() int { return limit(c.MaxPendingPerIP, defaultMaxPendingPerIP) }

func (c *Config) refusalLogInterval() time.Duration {
	switch {
	case c.RefusalLogInterval < 0:
		return 0
	case c.RefusalLogInterval == 0:
		return defaultRefusalLogEvery
	}
	return c.RefusalLogInterval
}

func (c *Config) spin() int {
	switch {
	case c.Spin < 0:
		return 0
	case c.Spin == 0:
		return defaultSpin
	}
	return c.Spin
}

func (c *Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}
