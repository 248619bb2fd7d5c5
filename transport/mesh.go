package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrAborted: the mesh was aborted (by Abort, Close, or an earlier failed
// exchange); build a new one.
var ErrAborted = errors.New("data plane aborted")

// ErrProtocol: a frame arrived that does not belong to the exchange in
// progress (another epoch, step, chunk or length).
var ErrProtocol = errors.New("protocol violation")

// pollInterval bounds how long an Exchange sleeps before it looks at its
// context again (Abort wakes it at once: shut-down sockets poll ready).
const pollInterval = 100 * time.Millisecond

// smallFrame is the most that Exchange's spin retries without asking ppoll
// first.
const smallFrame = 4096

// Mesh is one rank's set of connections to the ranks it exchanges data with,
// in one ring epoch. Its Exchange method satisfies ring.Peer.
type Mesh struct {
	rank, size int
	epoch      uint32
	conns      []*Conn // by rank; nil where there is no link
	spin       int
	stallWarn  time.Duration
	onStall    func(Stall)

	mu      sync.Mutex // held by Exchange; Close waits for it
	aborted atomic.Bool
	watched sync.WaitGroup // the hang-up watch (AbortOnHangup), if any
	pfd     [2]unix.PollFd // park's arguments, kept here so parking allocates nothing
	ts      unix.Timespec
}

// Connect builds rank's mesh for ring epoch epoch: for every rank in links it
// dials the peer's address in addrs (when rank is the lower of the two) or
// waits on ln for the peer to dial in. A link is up once both ends have
// confirmed it (see claim): the peer is connecting into the same ring now,
// not merely listening, so that every link of the mesh belongs to the
// peers' current attempts even when attempts of one epoch follow each other
// (a failed ring re-formed from the same view). It returns when all links
// are up, or with every failure joined once ctx ends.
func Connect(ctx context.Context, ln *Listener, cfg Config, epoch uint32, rank int, addrs []string, links []int) (*Mesh, error) {
	m := &Mesh{rank: rank, size: len(addrs), epoch: epoch, conns: make([]*Conn, len(addrs)), spin: cfg.spin(),
		stallWarn: cfg.StallWarn, onStall: cfg.OnStall}
	for _, p := range links { // all checked before any dial starts
		if p < 0 || p >= len(addrs) || p == rank {
			return nil, fmt.Errorf("connect: bad link to rank %d (size %d, self %d)", p, len(addrs), rank)
		}
	}
	up, err := newUpCount(len(links))
	if err != nil {
		return nil, err
	}
	defer up.close()
	lctx, cancel := context.WithCancel(ctx) // one link's failure ends the others' waits
	defer cancel()
	errs := make([]error, len(links))
	var wg sync.WaitGroup
	for i, p := range links {
		wg.Go(func() {
			for {
				var c *Conn
				var err error
				if rank < p {
					c, err = dialClaimed(lctx, addrs[p], cfg, epoch, rank, p)
				} else {
					c, err = acceptClaimed(lctx, ln, epoch, p, rank)
				}
				if err == nil {
					var hung bool
					if hung, err = up.wait(lctx, c); err == nil && !hung {
						m.conns[p] = c
						return
					}
					c.Close()
				}
				if err != nil {
					if ctx.Err() != nil || lctx.Err() == nil { // not merely the end of another link's wait
						errs[i] = err
					}
					cancel()
					return
				}
				// The peer gave this attempt up while the other links were
				// still coming up: link again, to its next attempt, instead of
				// failing this one (which would fail its other peers' in turn).
				cfg.logger().Debug("data plane: a peer left the ring attempt before it was complete; linking again", "rank", p, "epoch", epoch)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil || ctx.Err() != nil {
		m.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("rank %d: connect to ring (epoch %d): %w", rank, epoch, err)
	}
	return m, nil
}

// upCount counts the links of a Connect that are up, and wakes every link's
// goroutine once all are (an eventfd: once written, it stays readable).
type upCount struct {
	mu       sync.Mutex
	up, want int
	all      bool
	efd      int
}

func newUpCount(want int) (*upCount, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("data plane: eventfd: %w", err)
	}
	return &upCount{want: want, efd: efd}, nil
}

func (u *upCount) close() { unix.Close(u.efd) }

// wait counts c as up and waits until every link is, or c's peer hangs up
// first (hung: c no longer counts), or ctx ends.
func (u *upCount) wait(ctx context.Context, c *Conn) (hung bool, err error) {
	u.mu.Lock()
	if u.up++; u.up == u.want {
		u.all = true
		signal(u.efd)
	}
	u.mu.Unlock()
	fds := []unix.PollFd{{Fd: int32(u.efd), Events: unix.POLLIN}, {Fd: int32(c.fd), Events: unix.POLLRDHUP}}
	for {
		if err := pollUntil(ctx, fds); err != nil {
			return false, err
		}
		if fds[0].Revents != 0 {
			return false, nil
		}
		if fds[1].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0 {
			u.mu.Lock()
			defer u.mu.Unlock()
			if u.all { // too late: the mesh is complete (and fails at its first use)
				return false, nil
			}
			u.up--
			return true, nil
		}
	}
}

// dialClaimed dials rank to and waits for it to claim the connection; when
// the peer drops it unclaimed (its listener took a newer one, or it closed),
// it dials again.
func dialClaimed(ctx context.Context, addr string, cfg Config, epoch uint32, from, to int) (*Conn, error) {
	for {
		c, err := Dial(ctx, addr, cfg, epoch, from, to)
		if err != nil {
			return nil, err
		}
		err = c.awaitClaim(ctx)
		if err == nil {
			return c, nil
		}
		c.Close()
		if !claimGone(err) || ctx.Err() != nil {
			return nil, fmt.Errorf("rank %d at %s did not take the connection (epoch %d): %w", to, addr, epoch, err)
		}
		if err := pause(ctx, 10*time.Millisecond); err != nil {
			return nil, fmt.Errorf("rank %d at %s dropped the connection unclaimed (epoch %d): %w", to, addr, epoch, err)
		}
	}
}

// acceptClaimed waits for rank from's connection and claims it; one whose
// dialer has moved on (it hangs up instead of confirming) is dropped, and
// the next one is waited for.
func acceptClaimed(ctx context.Context, ln *Listener, epoch uint32, from, to int) (*Conn, error) {
	for {
		c, err := ln.Accept(ctx, epoch, from, to)
		if err != nil {
			return nil, err
		}
		err = c.claim(ctx)
		if err == nil {
			return c, nil
		}
		c.Close()
		if !claimGone(err) || ctx.Err() != nil {
			return nil, fmt.Errorf("claiming the connection of rank %d (epoch %d): %w", from, epoch, err)
		}
		ln.log.Debug("data plane: the dialer dropped its connection before the claim; waiting for its next", "rank", from, "epoch", epoch)
	}
}

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Rank is this mesh's rank.
func (m *Mesh) Rank() int { return m.rank }

// Size is the number of ranks.
func (m *Mesh) Size() int { return m.size }

// Exchange sends send to rank to while receiving exactly len(recv) bytes from
// rank from (a negative rank skips that direction), each as one frame tagged
// with the mesh's epoch and (seq, chunk). It returns when both are done, or
// fails with an error naming the peer: when a peer closes, sends a frame of
// another epoch, step, chunk or length, or nothing arrives by ctx's deadline.
// Any failure aborts the whole mesh, so that the peers fail fast too.
func (m *Mesh) Exchange(ctx context.Context, to int, send []byte, from int, recv []byte, seq uint64, chunk uint32) error {
	if m.aborted.Load() {
		return ErrAborted
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.aborted.Load() { // Close may have run while we waited for the lock
		return ErrAborted
	}
	var s, r *Conn
	if to >= 0 {
		if s = m.link(to); s == nil {
			return fmt.Errorf("send to rank %d: no link from rank %d", to, m.rank)
		}
		s.startSend(Header{Type: FrameData, Epoch: m.epoch, Step: seq, Chunk: chunk}, send)
	}
	if from >= 0 {
		if r = m.link(from); r == nil {
			return fmt.Errorf("recv from rank %d: no link to rank %d", from, m.rank)
		}
		r.startRecv(recv)
	}
	// Try both directions at once; after that, only a direction that ppoll
	// reports ready. Retrying a read that would block costs the socket lock
	// that the arriving data needs; ppoll's check takes no lock.
	sendReady, recvReady := true, true
	spins := 0
	var parked time.Time // when this exchange first slept: the stall clock
	warned := m.stallWarn <= 0 || m.onStall == nil
	for {
		if s != nil && s.wdone < s.wsize && sendReady {
			if _, err := s.writeSome(); err != nil && err != syscall.EAGAIN {
				return m.fail("send to", s, err)
			}
		}
		if r != nil && r.rdone < r.rsize && recvReady {
			n, err := r.readSome()
			if err != nil && err != syscall.EAGAIN {
				return m.fail("recv from", r, err)
			}
			if n > 0 {
				if err := m.check(r, seq, chunk); err != nil {
					return m.fail("recv from", r, err)
				}
				if r.rdone == r.rsize {
					if err := r.finishRecv(); err != nil {
						return m.fail("recv from", r, fmt.Errorf("step %d, chunk %d: %w", seq, chunk, err))
					}
				}
			}
		}
		sending := s != nil && s.wdone < s.wsize
		receiving := r != nil && r.rdone < r.rsize
		if !sending && !receiving {
			return nil
		}
		// Spin first (ppoll without timeout, then sched_yield so the other
		// processes of an oversubscribed host run), then sleep in ppoll.
		var wait time.Duration
		if spins >= m.spin {
			if err := ctx.Err(); err != nil {
				c, dir := r, "recv from"
				if !receiving {
					c, dir = s, "send to"
				}
				why := "stopped waiting"
				if err == context.DeadlineExceeded {
					why = "waited until the deadline"
				}
				return m.fail(dir, c, fmt.Errorf("%s (step %d, chunk %d): %w", why, seq, chunk, err))
			}
			if !warned {
				warned = m.checkStall(&parked, s, r, receiving, seq, chunk)
			}
			wait = pollInterval
			if d, ok := ctx.Deadline(); ok {
				wait = max(time.Microsecond, min(wait, time.Until(d)))
			}
		}
		if wait == 0 && (!receiving || r.rsize-r.rdone <= smallFrame) && (!sending || s.wsize-s.wdone <= smallFrame) {
			// A small frame is one packet: just try again, one syscall
			// fewer than looking first.
			sendReady, recvReady = sending, receiving
			spins++
			yield()
			continue
		}
		sendReady, recvReady = m.poll(s, sending, r, receiving, wait)
		switch {
		case wait > 0 && m.aborted.Load():
			return ErrAborted
		case sendReady || recvReady:
			spins = 0
		case wait == 0:
			spins++
			yield()
		default:
			spins = 0
		}
	}
}

// checkStall starts the stall clock at the first sleep of an exchange and,
// once it has run StallWarn, tells OnStall whom the exchange waits on (the
// receive first: a send blocks only when the peer stopped reading). It
// reports whether it told.
func (m *Mesh) checkStall(parked *time.Time, s, r *Conn, receiving bool, seq uint64, chunk uint32) bool {
	now := time.Now()
	if parked.IsZero() {
		*parked = now
		return false
	}
	waited := now.Sub(*parked)
	if waited < m.stallWarn {
		return false
	}
	c, dir := r, "recv from"
	if !receiving {
		c, dir = s, "send to"
	}
	m.onStall(Stall{Peer: c.Peer(), Dir: dir, Waited: waited, Seq: seq, Chunk: chunk})
	return true
}

// poll waits in ppoll(2), for at most wait (0: just look), until r is
// readable (if receiving) or s writable (if sending), and reports which is.
// Waiting on both at once matters: a rank whose receive is pending may also
// hold a send that its peer has just made room for, and ranks that all slept
// on their reads would stall the ring. Errors and hang-ups count as ready, so
// that the next attempt reports them.
func (m *Mesh) poll(s *Conn, sending bool, r *Conn, receiving bool, wait time.Duration) (sendReady, recvReady bool) {
	k, si := 0, -1
	if receiving {
		m.pfd[0] = unix.PollFd{Fd: int32(r.fd), Events: unix.POLLIN}
		k = 1
	}
	if sending {
		if k == 1 && s == r {
			m.pfd[0].Events |= unix.POLLOUT
			si = 0
		} else {
			m.pfd[k] = unix.PollFd{Fd: int32(s.fd), Events: unix.POLLOUT}
			si = k
			k++
		}
	}
	m.pfd[0].Revents, m.pfd[1].Revents = 0, 0
	m.ts = unix.NsecToTimespec(int64(wait))
	call := syscall.Syscall6 // may block: let the scheduler run other goroutines
	if wait == 0 {
		call = syscall.RawSyscall6 // returns at once
	}
	// EINTR (the Go runtime's preemption signals) just ends the wait early.
	n, _, e := call(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&m.pfd[0])), uintptr(k),
		uintptr(unsafe.Pointer(&m.ts)), 0, 0, 0)
	if e != 0 || n == 0 {
		return false, false
	}
	const bad = unix.POLLERR | unix.POLLHUP | unix.POLLNVAL
	if receiving {
		recvReady = m.pfd[0].Revents&(unix.POLLIN|unix.POLLRDHUP|bad) != 0
	}
	if si >= 0 {
		sendReady = m.pfd[si].Revents&(unix.POLLOUT|bad) != 0
	}
	return sendReady, recvReady
}

// check validates the incoming header once it is complete.
func (m *Mesh) check(r *Conn, seq uint64, chunk uint32) error {
	if r.rchecked || r.rdone < HeaderSize {
		return nil
	}
	r.rchecked = true
	h, err := parseHeader(r.rhdr[:])
	if err != nil {
		return err
	}
	if h.Type != FrameData || h.Epoch != m.epoch || h.Step != seq || h.Chunk != chunk || int(h.Length) != len(r.rbuf) {
		return fmt.Errorf("%w: got frame (type %d, epoch %d, step %d, chunk %d, %d bytes), want (type %d, epoch %d, step %d, chunk %d, %d bytes): are all ranks running the same collective with the same length?",
			ErrProtocol, h.Type, h.Epoch, h.Step, h.Chunk, h.Length, FrameData, m.epoch, seq, chunk, len(r.rbuf))
	}
	return nil
}

func (m *Mesh) fail(dir string, c *Conn, err error) error {
	if err == io.EOF {
		err = fmt.Errorf("connection closed by peer: %w", io.ErrUnexpectedEOF)
	}
	m.Abort()
	return fmt.Errorf("%s %v: %w", dir, c, err)
}

// Protection is the weakest frame protection among the mesh's links (None
// for a mesh without links).
func (m *Mesh) Protection() Protection {
	var weakest Protection
	for _, c := range m.conns {
		if c != nil && (weakest == ProtectAuto || c.Protection() < weakest) {
			weakest = c.Protection()
		}
	}
	if weakest == ProtectAuto {
		return ProtectNone
	}
	return weakest
}

// Traffic returns the bytes of frames sent to and received from rank peer
// over this mesh (see Conn.Traffic), and false when the mesh has no link to
// it. It is safe to call from any goroutine, also after Close.
func (m *Mesh) Traffic(peer int) (sent, received uint64, ok bool) {
	if peer < 0 || peer >= len(m.conns) || m.conns[peer] == nil {
		return 0, 0, false
	}
	sent, received = m.conns[peer].Traffic()
	return sent, received, true
}

func (m *Mesh) link(rank int) *Conn {
	if rank >= len(m.conns) {
		return nil
	}
	return m.conns[rank]
}

// Abort fails the exchange in progress (if any) and every later one, and
// shuts down all connections so that the peers' exchanges fail at once
// instead of waiting for their deadlines. It is safe to call from any
// goroutine.
func (m *Mesh) Abort() {
	if m.aborted.Swap(true) {
		return
	}
	for _, c := range m.conns {
		if c != nil {
			c.shutdown()
		}
	}
}

// AbortOnHangup watches every link of the mesh until stop is called: once
// any peer hangs up, the mesh aborts, so that an Exchange waiting on another
// link fails at once instead of at its deadline. It is for phases in which a
// peer closes its links only when it has given the mesh up (a ring being
// formed: its peer's attempt failed, and so must this one), not for a
// collective that peers may finish and leave at different moments. Close
// stops it too.
func (m *Mesh) AbortOnHangup() (stop func(), err error) {
	m.watched.Wait()                                                 // at most one watch at a time
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK) // stop's signal
	if err != nil {
		return nil, fmt.Errorf("data plane: eventfd: %w", err)
	}
	fds := []unix.PollFd{{Fd: int32(wake), Events: unix.POLLIN}}
	for _, c := range m.conns {
		if c != nil {
			fds = append(fds, unix.PollFd{Fd: int32(c.fd), Events: unix.POLLRDHUP})
		}
	}
	m.watched.Add(1)
	go func() {
		defer m.watched.Done()
		for {
			for i := range fds {
				fds[i].Revents = 0
			}
			// Abort shuts the sockets down, which wakes this too.
			if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
				return
			}
			if fds[0].Revents != 0 || m.aborted.Load() {
				return
			}
			for _, f := range fds[1:] {
				if f.Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
					m.Abort()
					return
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal(wake)
			m.watched.Wait()
			unix.Close(wake)
		})
	}, nil
}

// Close aborts the mesh, waits for a running Exchange to return, and closes
// all connections. The conns slice itself is never changed, so that a
// concurrent Abort can read it safely.
func (m *Mesh) Close() error {
	m.Abort()
	m.watched.Wait() // the watch ends once the mesh is aborted
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, c := range m.conns {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}
