package ring

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// memNet is an in-memory network of n ranks: one buffered channel per ordered
// pair of ranks. A rank can be closed (its peers then fail at once, like a
// TCP reset) or silenced (it stops answering, like a stopped process).
type memNet struct {
	n    int
	ch   [][]chan memMsg // ch[from][to]
	dead []chan struct{}
	once []sync.Once
}

type memMsg struct {
	seq   uint64
	chunk uint32
	data  []byte
}

var errPeerClosed = errors.New("peer closed")

func newMemNet(n int) *memNet {
	m := &memNet{n: n, ch: make([][]chan memMsg, n), dead: make([]chan struct{}, n), once: make([]sync.Once, n)}
	for i := range m.ch {
		m.ch[i] = make([]chan memMsg, n)
		for j := range m.ch[i] {
			m.ch[i][j] = make(chan memMsg, 4)
		}
		m.dead[i] = make(chan struct{})
	}
	return m
}

func (m *memNet) close(rank int) { m.once[rank].Do(func() { close(m.dead[rank]) }) }

type memPeer struct {
	net  *memNet
	rank int
	// failAfter, when > 0, closes this rank when it starts its failAfter-th exchange.
	failAfter int
	calls     int
}

func (p *memPeer) Exchange(ctx context.Context, to int, send []byte, from int, recv []byte, seq uint64, chunk uint32) error {
	p.calls++
	for _, q := range []int{to, from} {
		if q >= 0 && !slices.Contains(Links(p.rank, p.net.n), q) {
			return fmt.Errorf("rank %d: exchange with rank %d, which is not in Links", p.rank, q)
		}
	}
	if p.failAfter > 0 && p.calls >= p.failAfter {
		p.net.close(p.rank)
		return fmt.Errorf("rank %d: injected failure: %w", p.rank, errPeerClosed)
	}
	if to >= 0 {
		msg := memMsg{seq: seq, chunk: chunk, data: append([]byte(nil), send...)}
		select {
		case p.net.ch[p.rank][to] <- msg:
		case <-p.net.dead[to]:
			return fmt.Errorf("send to rank %d: %w", to, errPeerClosed)
		case <-ctx.Done():
			return fmt.Errorf("send to rank %d: %w", to, ctx.Err())
		}
	}
	if from >= 0 {
		select {
		case msg := <-p.net.ch[from][p.rank]:
			if msg.seq != seq || msg.chunk != chunk || len(msg.data) != len(recv) {
				return fmt.Errorf("recv from rank %d: got (seq %d, chunk %d, %d bytes), want (%d, %d, %d)",
					from, msg.seq, msg.chunk, len(msg.data), seq, chunk, len(recv))
			}
			copy(recv, msg.data)
		case <-p.net.dead[from]:
			return fmt.Errorf("recv from rank %d: %w", from, errPeerClosed)
		case <-ctx.Done():
			return fmt.Errorf("recv from rank %d: %w", from, ctx.Err())
		}
	}
	return nil
}

// runRanks runs f for every rank of an n-rank memNet, each in its own
// goroutine, and returns the per-rank errors.
func runRanks(n int, opts Options, setup func(p *memPeer), f func(c *Comm) error) []error {
	net := newMemNet(n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := 0; r < n; r++ {
		p := &memPeer{net: net, rank: r}
		if setup != nil {
			setup(p)
		}
		c := New(p, r, n, opts)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = f(c)
			if errs[r] != nil {
				net.close(r) // a failed rank drops its links, as the transport does
			}
		}()
	}
	wg.Wait()
	return errs
}
