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
	pfd     [2]unix.PollFd // park's arguments, kept here so parking allocates nothing
	ts      unix.Timespec
}

// Connect builds rank's mesh for ring epoch epoch: for every rank in links it
// dials the peer's address in addrs (when rank is the lower of the two) or
// waits on ln for the peer to dial in. It returns when all links are up, or
// with every failure joined once ctx ends.
func Connect(ctx context.Context, ln *Listener, cfg Config, epoch uint32, rank int, addrs []string, links []int) (*Mesh, error) {
	m := &Mesh{rank: rank, size: len(addrs), epoch: epoch, conns: make([]*Conn, len(addrs)), spin: cfg.spin(),
		stallWarn: cfg.StallWarn, onStall: cfg.OnStall}
	for _, p := range links { // all checked before any dial starts
		if p < 0 || p >= len(addrs) || p == rank {
			return nil, fmt.Errorf("connect: bad link to rank %d (size %d, self %d)", p, len(addrs), rank)
		}
	}
	errs := make([]error, len(links))
	var wg sync.WaitGroup
	for i, p := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *Conn
			var err error
			if rank < p {
				c, err = Dial(ctx, addrs[p], cfg, epoch, rank, p)
			} else {
				c, err = ln.Accept(ctx, epoch, p, rank)
			}
			m.conns[p], errs[i] = c, err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		m.Close()
		return nil, fmt.Errorf("rank %d: connect to ring (epoch %d): %w", rank, epoch, err)
	}
	return m, nil
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

// Close aborts the mesh, waits for a running Exchange to return, and closes
// all connections. The conns slice itself is never changed, so that a
// concurrent Abort can read it safely.
func (m *Mesh) Close() error {
	m.Abort()
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
