package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A plan says whom each rank sends to and receives from (-1: nobody).
type plan struct {
	name string
	dirs func(rank, n int) (to, from int)
}

var plans = []plan{
	{"ring", func(r, n int) (int, int) { return (r + 1) % n, (r + n - 1) % n }},
	{"reverse ring", func(r, n int) (int, int) { return (r + n - 1) % n, (r + 1) % n }},
	{"pipeline", func(r, n int) (int, int) {
		to, from := r+1, r-1
		if to == n {
			to = -1
		}
		return to, from
	}},
}

func TestExchange(t *testing.T) {
	sizes := []int{0, 1, 4096, 3<<20 + 5}
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d ranks", n), func(t *testing.T) {
			meshes := newRing(t, n, testConfig())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			seq := uint64(0)
			for _, p := range plans {
				for _, size := range sizes {
					seq++
					chunk := uint32(seq * 3)
					t.Run(fmt.Sprintf("%s/%d bytes", p.name, size), func(t *testing.T) {
						tos, froms := make([]int, n), make([]int, n)
						sends, recvs := make([][]byte, n), make([][]byte, n)
						for r := range n {
							tos[r], froms[r] = p.dirs(r, n)
							if tos[r] >= 0 {
								sends[r] = make([]byte, size)
								fill(sends[r], r, seq)
							}
							if froms[r] >= 0 {
								recvs[r] = bytes.Repeat([]byte{0xee}, size)
							}
						}
						if err := runExchanges(ctx, meshes, tos, froms, sends, recvs, seq, chunk); err != nil {
							t.Fatalf("Exchange: %v", err)
						}
						for r, from := range froms {
							if from >= 0 && !bytes.Equal(recvs[r], sends[from]) {
								t.Errorf("rank %d received %d bytes from rank %d that differ from what it sent", r, size, from)
							}
						}
					})
				}
			}
		})
	}
}

func TestExchangeProtocolMismatch(t *testing.T) {
	// Rank 0 sends a frame and waits for one from rank 1; rank 1 expects a
	// different frame from rank 0 and sends nothing.
	tests := []struct {
		name                 string
		sendLen, recvLen     int
		sendSeq, recvSeq     uint64
		sendChunk, recvChunk uint32
	}{
		{name: "longer than expected", sendLen: 20, recvLen: 10},
		{name: "shorter than expected", sendLen: 10, recvLen: 20},
		{name: "empty, one byte expected", sendLen: 0, recvLen: 1},
		{name: "other step", sendLen: 8, recvLen: 8, sendSeq: 5, recvSeq: 6},
		{name: "other chunk", sendLen: 8, recvLen: 8, sendChunk: 1, recvChunk: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newRing(t, 2, testConfig())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			peerErr := make(chan error, 1)
			start := time.Now()
			go func() {
				peerErr <- m[0].Exchange(ctx, 1, make([]byte, tc.sendLen), 1, make([]byte, 8), tc.sendSeq, tc.sendChunk)
			}()
			err := m[1].Exchange(ctx, -1, nil, 0, make([]byte, tc.recvLen), tc.recvSeq, tc.recvChunk)
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("rank 1: %v, want ErrProtocol", err)
			}
			mustMention(t, err, "recv from", rankName(0))
			// Rank 1 aborted its mesh, so rank 0's pending receive fails at
			// once instead of at its deadline.
			select {
			case err := <-peerErr:
				mustMention(t, err, rankName(1))
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("the peer's Exchange failed after %v, want promptly", d)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the peer's Exchange still blocked 5 s after the protocol error")
			}
			for r, mesh := range m {
				if err := mesh.Exchange(ctx, 1-r, []byte{1}, 1-r, make([]byte, 1), 100, 0); !errors.Is(err, ErrAborted) {
					t.Errorf("rank %d: Exchange after the failure: %v, want ErrAborted", r, err)
				}
			}
		})
	}
}

func TestExchangeDeadline(t *testing.T) {
	const deadline = 300 * time.Millisecond
	tests := []struct {
		name       string
		rank       int // the rank that waits; the other does nothing
		to, from   int
		send, recv int
		want       string
	}{
		{name: "peer never sends", rank: 1, to: -1, from: 0, recv: 8, want: "recv from rank 0"},
		{name: "peer never sends, both ways", rank: 0, to: 1, from: 1, send: 8, recv: 8, want: "recv from rank 1"},
		// More than the sockets' buffers can hold.
		{name: "peer never reads", rank: 0, to: 1, from: -1, send: 64 << 20, want: "send to rank 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newRing(t, 2, testConfig())
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			var err error
			d := within(t, deadline+2*time.Second, "Exchange with a silent peer", func() {
				err = m[tc.rank].Exchange(ctx, tc.to, make([]byte, tc.send), tc.from, make([]byte, tc.recv), 1, 0)
			})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Exchange: %v, want context.DeadlineExceeded", err)
			}
			mustMention(t, err, tc.want)
			if d < deadline*3/4 {
				t.Errorf("Exchange gave up after %v, before its deadline %v", d, deadline)
			}
			// The failure aborted this rank's mesh; the idle peer learns of it
			// at its next Exchange, long before that one's deadline.
			other := 1 - tc.rank
			ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel2()
			within(t, 2*time.Second, "the peer's Exchange", func() {
				err = m[other].Exchange(ctx2, -1, nil, tc.rank, make([]byte, 8), 2, 0)
			})
			mustMention(t, err, rankName(tc.rank))
		})
	}
}

// TestExchangeUnblockedByClose checks that Close or Abort from another
// goroutine ends an Exchange blocked on a silent peer at once.
func TestExchangeUnblockedByClose(t *testing.T) {
	tests := []struct {
		name       string
		to, from   int
		send, recv int
	}{
		{name: "blocked receiving", to: -1, from: 1, recv: 8},
		{name: "blocked sending", to: 1, from: -1, send: 64 << 20},
		{name: "blocked both ways", to: 1, from: 1, send: 64 << 20, recv: 8},
	}
	stops := []struct {
		name string
		stop func(*Mesh)
	}{
		{"Close", func(m *Mesh) { _ = m.Close() }},
		{"Abort", (*Mesh).Abort},
	}
	for _, tc := range tests {
		for _, st := range stops {
			t.Run(tc.name+"/"+st.name, func(t *testing.T) {
				m := newRing(t, 2, testConfig())
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				done := make(chan error, 1)
				go func() {
					done <- m[0].Exchange(ctx, tc.to, make([]byte, tc.send), tc.from, make([]byte, tc.recv), 1, 0)
				}()
				waitForStack(t, "transport.(*Mesh).Exchange", 5*time.Second)
				within(t, 2*time.Second, st.name, func() { st.stop(m[0]) })
				select {
				case err := <-done:
					if err == nil {
						t.Fatal("Exchange succeeded with a silent peer")
					}
				case <-time.After(2 * time.Second):
					t.Fatalf("Exchange still blocked 2 s after %s", st.name)
				}
				if err := m[0].Exchange(ctx, 1, []byte{1}, 1, make([]byte, 1), 2, 0); !errors.Is(err, ErrAborted) {
					t.Errorf("Exchange after %s: %v, want ErrAborted", st.name, err)
				}
				if err := m[0].Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
		}
	}
}

func TestExchangeNoLink(t *testing.T) {
	m := newRing(t, 2, testConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tests := []struct {
		name     string
		to, from int
		want     string
	}{
		{"send to self", 0, -1, "send to rank 0"},
		{"send past size", 5, -1, "send to rank 5"},
		{"recv from self", -1, 0, "recv from rank 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := m[0].Exchange(ctx, tc.to, []byte{1}, tc.from, make([]byte, 1), 1, 0)
			mustMention(t, err, tc.want)
		})
	}
}

func TestAccept(t *testing.T) {
	tests := []struct {
		name  string
		ctx   func() (context.Context, context.CancelFunc)
		close bool // close the listener while Accept waits
		want  error
	}{
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, false, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, false, context.DeadlineExceeded},
		{"listener closed", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 10*time.Second)
		}, true, net.ErrClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln := listen(t, testConfig())
			ctx, cancel := tc.ctx()
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := ln.Accept(ctx, 4, 3, 0)
				done <- err
			}()
			if tc.close {
				waitForStack(t, "transport.(*Listener).Accept", 5*time.Second)
				if err := ln.Close(); err != nil {
					t.Fatal(err)
				}
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Accept still blocked after 5 s")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Accept: %v, want %v", err, tc.want)
			}
			if tc.want != net.ErrClosed {
				mustMention(t, err, rankName(3), "epoch 4")
			}
		})
	}
}

// TestAcceptAfterGivingUp checks that an Accept that gave up leaves nothing
// behind: the connection, when it comes, goes to the next Accept.
func TestAcceptAfterGivingUp(t *testing.T) {
	ln := listen(t, testConfig())
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ln.Accept(cancelled, 1, 0, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Accept: %v, want context.Canceled", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dialed, err := Dial(ctx, ln.Addr().String(), testConfig(), 1, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer dialed.Close()
	c, err := ln.Accept(ctx, 1, 0, 1)
	if err != nil {
		t.Fatalf("Accept after a cancelled one: %v", err)
	}
	defer c.Close()
	if c.Peer() != 0 || c.Epoch() != 1 || dialed.Peer() != 1 || dialed.Epoch() != 1 {
		t.Errorf("accepted %v epoch %d, dialed %v epoch %d; want rank 0 and rank 1 in epoch 1", c, c.Epoch(), dialed, dialed.Epoch())
	}
}

func TestDialNothingListening(t *testing.T) {
	// A port that was free a moment ago: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	// Attempts start at 0, 10, 30, 70, 150 and 310 ms: the deadline falls in
	// the middle of a backoff wait, not on an attempt.
	const deadline = 230 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var c *Conn
	d := within(t, deadline+2*time.Second, "Dial to a closed port", func() {
		c, err = Dial(ctx, addr, testConfig(), 1, 0, 1)
	})
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded with nothing listening")
	}
	if d < deadline*3/4 {
		t.Errorf("Dial gave up after %v, before its deadline %v", d, deadline)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Dial: %v; want the last real cause, ECONNREFUSED", err)
	}
	mustMention(t, err, "connection refused", "attempts", rankName(1), addr)
	m := regexp.MustCompile(`(\d+) attempts`).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("Dial: %v; no attempt count", err)
	}
	if n, _ := strconv.Atoi(m[1]); n < 2 {
		t.Errorf("Dial made %d attempts in %v, want it to retry", n, deadline)
	}
}

func TestConnectBadLinks(t *testing.T) {
	ln := listen(t, testConfig())
	addrs := []string{ln.Addr().String(), "127.0.0.1:1", "127.0.0.1:1"}
	tests := []struct {
		name  string
		links []int
	}{
		{"self", []int{0}},
		{"negative", []int{-1}},
		{"past size", []int{3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			m, err := Connect(ctx, ln, testConfig(), 1, 0, addrs, tc.links)
			if err == nil {
				m.Close()
				t.Fatal("Connect accepted a bad link")
			}
			mustMention(t, err, "bad link")
		})
	}
}

// TestConnectBadLinkAfterGoodOne: a bad link anywhere in links must make
// Connect fail before it dials anyone.
func TestConnectBadLinkAfterGoodOne(t *testing.T) {
	cfg := testConfig()
	peer := listen(t, cfg)
	self := listen(t, cfg)
	addrs := []string{self.Addr().String(), peer.Addr().String()}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if m, err := Connect(ctx, self, cfg, 1, 0, addrs, []int{1, 7}); err == nil {
		m.Close()
		t.Fatal("Connect accepted link 7 of 2 ranks")
	}
	// Nobody should have dialed rank 1.
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	if c, err := peer.Accept(short, 1, 0, 1); err == nil {
		c.Close()
		t.Error("rank 0 connected to rank 1 although Connect failed")
	}
}

// TestMeshAbortDuringClose: Abort is documented as safe from any goroutine,
// so it must not race with Close (run with -race).
func TestMeshAbortDuringClose(t *testing.T) {
	for range 20 {
		m := newRing(t, 3, testConfig())
		var wg sync.WaitGroup
		wg.Go(func() { m[0].Abort() })
		wg.Go(func() { _ = m[0].Close() })
		wg.Wait()
	}
}

// TestMeshTraffic: every frame's bytes on the wire (header, payload, and the
// tag when frames are protected) are counted once by the sender and once by
// the receiver, per peer rank; a rank without a link reports none.
func TestMeshTraffic(t *testing.T) {
	for _, tc := range []struct {
		protect Protection
		perTag  uint64 // bytes a frame's protection adds
	}{
		{ProtectNone, 0},
		{ProtectMAC, tagSize},
		{ProtectEncrypt, tagSize},
	} {
		t.Run(tc.protect.String(), func(t *testing.T) {
			const n = 3
			meshes := newRing(t, n, withProtection(tc.protect))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			sizes := []int{0, 8, 70000}
			var want uint64
			for i, size := range sizes {
				tos, froms := make([]int, n), make([]int, n)
				sends, recvs := make([][]byte, n), make([][]byte, n)
				for r := range n {
					tos[r], froms[r] = (r+1)%n, (r+n-1)%n
					sends[r], recvs[r] = make([]byte, size), make([]byte, size)
				}
				if err := runExchanges(ctx, meshes, tos, froms, sends, recvs, uint64(i+1), 0); err != nil {
					t.Fatal(err)
				}
				want += HeaderSize + uint64(size) + tc.perTag
			}
			for r, m := range meshes {
				next, prev := (r+1)%n, (r+n-1)%n
				if sent, _, ok := m.Traffic(next); !ok || sent != want {
					t.Errorf("rank %d: sent %d bytes to rank %d (link %v), want %d", r, sent, next, ok, want)
				}
				if _, recv, ok := m.Traffic(prev); !ok || recv != want {
					t.Errorf("rank %d: received %d bytes from rank %d (link %v), want %d", r, recv, prev, ok, want)
				}
				for _, p := range []int{-1, r, n} {
					if _, _, ok := m.Traffic(p); ok {
						t.Errorf("rank %d: Traffic(%d) reports a link", r, p)
					}
				}
			}
			m := meshes[0]
			m.Close()
			if sent, _, _ := m.Traffic(1); sent != want {
				t.Errorf("after Close: sent %d, want %d", sent, want)
			}
		})
	}
}

// TestExchangeStallWarning: an exchange that waits StallWarn on a silent
// peer says so once, naming the peer and what it waits for, and still fails
// at its deadline.
func TestExchangeStallWarning(t *testing.T) {
	stalls := make(chan Stall, 8)
	cfg := testConfig()
	cfg.StallWarn = 50 * time.Millisecond
	cfg.OnStall = func(s Stall) { stalls <- s }
	meshes := newRing(t, 2, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	err := meshes[0].Exchange(ctx, -1, nil, 1, make([]byte, 64), 7, 3) // rank 1 sends nothing
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Exchange: %v, want the deadline", err)
	}
	close(stalls)
	var got []Stall
	for s := range stalls {
		got = append(got, s)
	}
	if len(got) != 1 {
		t.Fatalf("%d stall warnings, want 1: %+v", len(got), got)
	}
	if s := got[0]; s.Peer != 1 || s.Dir != "recv from" || s.Seq != 7 || s.Chunk != 3 || s.Waited < cfg.StallWarn {
		t.Fatalf("stall %+v", s)
	}
}
