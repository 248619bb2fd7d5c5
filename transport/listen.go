package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Listener accepts data-plane connections, runs the server side of the
// handshake on each in its own goroutine, and holds authenticated ones until
// Accept claims them by (epoch, from, to).
type Listener struct {
	ln   net.Listener
	cfg  Config
	log  *slog.Logger
	wg   sync.WaitGroup
	mu   sync.Mutex
	done bool
	// ready holds authenticated connections nobody has claimed yet; waiting
	// holds the Accept calls that wait for one.
	ready   map[connKey]*Conn
	waiting map[connKey]chan *Conn
	// handshaking tracks conns mid-handshake, so Close can end them, and
	// pendingByIP counts them per source address, for the caps.
	handshaking map[net.Conn]netip.Addr
	pendingByIP map[netip.Addr]int
	// The high-water marks of the two (for tests and diagnostics).
	peakPending, peakPendingByIP int
	maxPending, maxPendingPerIP  int // 0: no bound
	refusals                     *refusalLog
	closed                       chan struct{} // closed by Close: ends a backoff wait
}

type connKey struct {
	epoch    uint32
	from, to int
}

// maxReady bounds the authenticated but unclaimed connections kept.
const maxReady = 256

// Listen opens a listener on addr ("host:port"; port 0 picks a free one).
func Listen(addr string, cfg Config) (*Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("data plane: listen on %s: %w", addr, err)
	}
	return newListener(ln, cfg), nil
}

// newListener serves the data plane on ln.
func newListener(ln net.Listener, cfg Config) *Listener {
	l := &Listener{ln: ln, cfg: cfg, log: cfg.logger(), ready: map[connKey]*Conn{},
		waiting: map[connKey]chan *Conn{}, handshaking: map[net.Conn]netip.Addr{},
		pendingByIP: map[netip.Addr]int{}, maxPending: cfg.maxPending(),
		maxPendingPerIP: cfg.maxPendingPerIP(), closed: make(chan struct{})}
	l.refusals = newRefusalLog(l.log, cfg.refusalLogInterval())
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

// Accept errors (say, EMFILE: out of file descriptors) are retried after a
// pause that starts at minAcceptBackoff and doubles up to maxAcceptBackoff,
// as net/http's Server does, instead of spinning.
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// remoteIP is the IP address of nc's peer, the key of the per-source caps
// and of the log's rate limit.
func remoteIP(nc net.Conn) netip.Addr {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	ap, _ := netip.ParseAddrPort(nc.RemoteAddr().String())
	return ap.Addr().Unmap()
}

// localIP is nc's own address (which tells loopback links apart).
func localIP(nc net.Conn) netip.Addr {
	if a, ok := nc.LocalAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	ap, _ := netip.ParseAddrPort(nc.LocalAddr().String())
	return ap.Addr().Unmap()
}

// refuse logs the refusal of nc (rate-limited per source address).
func (l *Listener) refuse(nc net.Conn, ip netip.Addr, level slog.Level, reason error) {
	l.refusals.refused(level, ip.String(), nc.RemoteAddr().String(), reason)
}

// Addr is the address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	var backoff time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if backoff == 0 {
				backoff = minAcceptBackoff
			} else {
				backoff = min(2*backoff, maxAcceptBackoff)
			}
			l.log.Warn("data plane: accept failed; retrying", "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-l.closed:
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		ip := remoteIP(nc)
		l.mu.Lock()
		if l.done {
			l.mu.Unlock()
			nc.Close()
			return
		}
		var over error
		switch {
		case l.maxPending > 0 && len(l.handshaking) >= l.maxPending:
			over = fmt.Errorf("too many pending handshakes (%d on this listener)", len(l.handshaking))
		case l.maxPendingPerIP > 0 && l.pendingByIP[ip] >= l.maxPendingPerIP:
			over = fmt.Errorf("too many pending handshakes from %s (%d)", ip, l.pendingByIP[ip])
		}
		if over != nil {
			l.mu.Unlock()
			nc.Close() // at once: it holds a file descriptor
			l.refuse(nc, ip, slog.LevelWarn, over)
			continue
		}
		l.handshaking[nc] = ip
		l.pendingByIP[ip]++
		l.peakPending = max(l.peakPending, len(l.handshaking))
		l.peakPendingByIP = max(l.peakPendingByIP, l.pendingByIP[ip])
		l.wg.Add(1)
		l.mu.Unlock()
		go l.handshake(nc, ip)
	}
}

// pending reports the handshakes in progress, those from ip, and the
// high-water marks of both (over all sources).
func (l *Listener) pending(ip netip.Addr) (total, fromIP, peak, peakPerIP int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.handshaking), l.pendingByIP[ip], l.peakPending, l.peakPendingByIP
}

func (l *Listener) handshake(nc net.Conn, ip netip.Addr) {
	defer l.wg.Done()
	h, sess, err := serverHandshake(nc, &l.cfg)
	l.mu.Lock()
	if _, ok := l.handshaking[nc]; ok {
		delete(l.handshaking, nc)
		if l.pendingByIP[ip]--; l.pendingByIP[ip] <= 0 {
			delete(l.pendingByIP, ip)
		}
	}
	l.mu.Unlock()
	if err != nil {
		level := slog.LevelWarn
		if err == io.EOF {
			level = slog.LevelDebug // connected and closed without a byte: a liveness probe
		}
		l.refuse(nc, ip, level, err)
		nc.Close()
		return
	}
	c, err := newConn(nc, h.From, h.Epoch, sess)
	if err != nil {
		l.refuse(nc, ip, slog.LevelWarn, err)
		nc.Close()
		return
	}
	l.deliver(connKey{h.Epoch, h.From, h.To}, c)
}

// deliver hands c to a waiting Accept, or keeps it for a later one. A newer
// connection for the same key replaces an older one (a peer that redialed).
func (l *Listener) deliver(k connKey, c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		c.Close()
		return
	}
	if ch, ok := l.waiting[k]; ok {
		delete(l.waiting, k)
		ch <- c // buffered: never blocks
		return
	}
	if old, ok := l.ready[k]; ok {
		old.Close()
	}
	if len(l.ready) >= maxReady {
		l.log.Warn("data plane: too many unclaimed connections; dropping", "remote", c.addr, "rank", k.from, "epoch", k.epoch)
		c.Close()
		return
	}
	l.ready[k] = c
}

// Accept waits for the authenticated connection that rank from opens to rank
// to in ring epoch epoch. Unclaimed connections whose dialer hung up are
// closed.
func (l *Listener) Accept(ctx context.Context, epoch uint32, from, to int) (*Conn, error) {
	k := connKey{epoch, from, to}
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		return nil, net.ErrClosed
	}
	for ok, c := range l.ready {
		if ok.epoch != epoch && c.peerClosed() { // left over from a ring that did not form
			l.log.Debug("data plane: dropping a stale connection", "rank", ok.from, "epoch", ok.epoch)
			c.Close()
			delete(l.ready, ok)
		}
	}
	if c, ok := l.ready[k]; ok {
		delete(l.ready, k)
		if !c.peerClosed() {
			l.mu.Unlock()
			return c, nil
		}
		// A leftover of a failed attempt of the same ring: the dialer has
		// hung up. Wait for its new connection.
		c.Close()
	}
	ch := make(chan *Conn, 1)
	l.waiting[k] = ch
	l.mu.Unlock()

	select {
	case c := <-ch:
		if c == nil {
			return nil, net.ErrClosed
		}
		return c, nil
	case <-ctx.Done():
		l.mu.Lock()
		if l.waiting[k] == ch {
			delete(l.waiting, k)
		}
		l.mu.Unlock()
		select {
		case c := <-ch: // delivered just as we gave up: keep it for a retry
			if c != nil {
				l.deliver(k, c)
			}
		default:
		}
		return nil, fmt.Errorf("waiting for rank %d to connect (epoch %d): %w", from, epoch, ctx.Err())
	}
}

// Close stops accepting, ends handshakes in progress, closes unclaimed
// connections and wakes pending Accept calls. Claimed connections belong to
// their owners.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		return nil
	}
	l.done = true
	close(l.closed)
	err := l.ln.Close()
	for nc := range l.handshaking {
		nc.Close()
	}
	for k, c := range l.ready {
		c.Close()
		delete(l.ready, k)
	}
	for k, ch := range l.waiting {
		close(ch)
		delete(l.waiting, k)
	}
	l.mu.Unlock()
	l.wg.Wait()
	l.refusals.close()
	return err
}
