package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrAborted: the mesh was aborted (by Abort, Close, or an earlier failed
// exchange); build a new one.
var ErrAborted = errors.New("data plane aborted")

// ErrProtocol: a frame arrived that does not belong to the exchange in
// progress (another epoch, step, chunk or length).
var ErrProtocol = errors.New("protocol violation")

// pollInterval bounds how long an Exchange parks before it looks at its
// context and at Abort again.
const pollInterval = 100 * time.Millisecond

// Mesh is one rank's set of connections to the ranks it exchanges data with,
// in one ring epoch. Its Exchange method satisfies ring.Peer.
type Mesh struct {
	rank, size int
	epoch      uint32
	conns      []*Conn // by rank; nil where there is no link
	spin       int

	mu      sync.Mutex // held by Exchange; Close waits for it
	aborted atomic.Bool
}

// Connect builds rank's mesh for ring epoch epoch: for every rank in links it
// dials the peer's address in addrs (when rank is the lower of the two) or
// waits on ln for the peer to dial in. It returns when all links are up, or
// with every failure joined once ctx ends.
func Connect(ctx context.Context, ln *Listener, cfg Config, epoch uint32, rank int, addrs []string, links []int) (*Mesh, error) {
	m := &Mesh{rank: rank, size: len(addrs), epoch: epoch, conns: make([]*Conn, len(addrs)), spin: cfg.spin()}
	errs := make([]error, len(links))
	var wg sync.WaitGroup
	for i, p := range links {
		if p < 0 || p >= len(addrs) || p == rank {
			return nil, fmt.Errorf("connect: bad link to rank %d (size %d, self %d)", p, len(addrs), rank)
		}
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
	spins := 0
	for {
		progress := false
		if s != nil && s.wdone < s.wsize {
			n, err := s.writeSome()
			if err != nil && err != syscall.EAGAIN {
				return m.fail("send to", s, err)
			}
			progress = n > 0
		}
		if r != nil && r.rdone < r.rsize {
			n, err := r.readSome()
			if err != nil && err != syscall.EAGAIN {
				return m.fail("recv from", r, err)
			}
			if n > 0 {
				progress = true
				if err := m.check(r, seq, chunk); err != nil {
					return m.fail("recv from", r, err)
				}
			}
		}
		sending := s != nil && s.wdone < s.wsize
		receiving := r != nil && r.rdone < r.rsize
		if !sending && !receiving {
			return nil
		}
		if progress {
			spins = 0
			continue
		}
		if spins < m.spin {
			spins++
			yield()
			continue
		}
		spins = 0
		// Park on whichever side we still wait for; the receive side first,
		// since data arriving is what lets every rank move on.
		c, read := s, false
		if receiving {
			c, read = r, true
		}
		dir := "send to"
		if read {
			dir = "recv from"
		}
		if err := ctx.Err(); err != nil {
			return m.fail(dir, c, fmt.Errorf("waited until the deadline (step %d, chunk %d): %w", seq, chunk, err))
		}
		deadline := time.Now().Add(pollInterval)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		n, err := c.park(read, deadline)
		if m.aborted.Load() {
			return fmt.Errorf("%s %v: %w", dir, c, ErrAborted)
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
		case err != nil && err != syscall.EAGAIN:
			return m.fail(dir, c, err)
		case n > 0 && read:
			if err := m.check(r, seq, chunk); err != nil {
				return m.fail(dir, c, err)
			}
		}
	}
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
// all connections.
func (m *Mesh) Close() error {
	m.Abort()
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for i, c := range m.conns {
		if c != nil {
			errs = append(errs, c.Close())
			m.conns[i] = nil
		}
	}
	return errors.Join(errs...)
}
