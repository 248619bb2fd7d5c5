package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func TestProtectionResolve(t *testing.T) {
	lo, lo2 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	lo6, lan := netip.MustParseAddr("::1"), netip.MustParseAddr("10.0.0.2")
	for _, tc := range []struct {
		p             Protection
		local, remote netip.Addr
		want          Protection
	}{
		{ProtectAuto, lo, lo2, ProtectNone},
		{ProtectAuto, lo6, lo6, ProtectNone},
		{ProtectAuto, lo, lan, ProtectMAC},
		{ProtectAuto, lan, lo, ProtectMAC},
		{ProtectAuto, lan, lan, ProtectMAC},
		{ProtectAuto, netip.Addr{}, netip.Addr{}, ProtectMAC}, // unknown ends: protect
		{ProtectNone, lan, lan, ProtectNone},
		{ProtectMAC, lo, lo, ProtectMAC},
		{ProtectEncrypt, lo, lo, ProtectEncrypt},
	} {
		if got := tc.p.resolve(tc.local, tc.remote); got != tc.want {
			t.Errorf("%v.resolve(%v, %v) = %v, want %v", tc.p, tc.local, tc.remote, got, tc.want)
		}
	}
	for _, s := range []string{"auto", "none", "mac", "encrypt"} {
		if p, err := ParseProtection(s); err != nil || p.String() != s {
			t.Errorf("ParseProtection(%q) = %v, %v", s, p, err)
		}
	}
	if _, err := ParseProtection("tls"); err == nil {
		t.Error("ParseProtection(tls): no error")
	}
}

// withProtection is testConfig with frame protection p.
func withProtection(p Protection) Config {
	cfg := testConfig()
	cfg.Protection = p
	return cfg
}

// A weaker offer than the server requires is refused after authentication,
// with the reason; an equal or stronger one is taken, and both ends then use
// the client's level.
func TestProtectionNegotiation(t *testing.T) {
	levels := []Protection{ProtectNone, ProtectMAC, ProtectEncrypt}
	for _, server := range levels {
		for _, client := range levels {
			t.Run(fmt.Sprintf("server %v, client %v", server, client), func(t *testing.T) {
				ln := listen(t, withProtection(server))
				if client < server {
					err := dialAs(t, ln.Addr().String(), withProtection(client), func(*Config) {})
					var refused *RefusedError
					if !errors.As(err, &refused) || !containsAll(err.Error(), "frame protection "+client.String(), "requires "+server.String()) {
						t.Fatalf("Dial: %v, want a refusal naming both levels", err)
					}
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				accepted := make(chan *Conn, 1)
				go func() {
					c, _ := ln.Accept(ctx, 1, 0, 1)
					accepted <- c
				}()
				c, err := Dial(ctx, ln.Addr().String(), withProtection(client), 1, 0, 1)
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				defer c.Close()
				s := <-accepted
				if s == nil {
					t.Fatal("Accept returned no connection")
				}
				defer s.Close()
				if c.Protection() != client || s.Protection() != client {
					t.Fatalf("protection: client end %v, server end %v, want %v", c.Protection(), s.Protection(), client)
				}
			})
		}
	}
}

// Every level delivers every size exactly, checked against what was sent.
func TestExchangeProtected(t *testing.T) {
	for _, p := range []Protection{ProtectAuto, ProtectMAC, ProtectEncrypt} {
		t.Run(p.String(), func(t *testing.T) {
			const n = 3
			meshes := newRing(t, n, withProtection(p))
			want := p.resolve(netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.1"))
			if got := meshes[0].Protection(); got != want {
				t.Fatalf("link protection %v, want %v", got, want)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tos, froms := make([]int, n), make([]int, n)
			for r := range n {
				tos[r], froms[r] = (r+1)%n, (r+n-1)%n
			}
			for seq, size := range []int{0, 1, 16, 4096, 3<<20 + 5} {
				sends, recvs := make([][]byte, n), make([][]byte, n)
				for r := range n {
					sends[r] = make([]byte, size)
					fill(sends[r], r, uint64(seq))
					recvs[r] = bytes.Repeat([]byte{0xee}, size)
				}
				if err := runExchanges(ctx, meshes, tos, froms, sends, recvs, uint64(seq+1), 0); err != nil {
					t.Fatalf("%d bytes: %v", size, err)
				}
				for r := range n {
					if !bytes.Equal(recvs[r], sends[froms[r]]) {
						t.Fatalf("%d bytes: rank %d received other bytes than rank %d sent", size, r, froms[r])
					}
				}
			}
		})
	}
}

// tamperProxy forwards one TCP connection to target. Once armed (after both
// handshakes are done) it cuts the client's stream into frames of frameSize
// bytes and lets edit rewrite the i-th one; everything it forwarded is kept
// in wire for inspection.
type tamperProxy struct {
	ln        net.Listener
	target    string
	frameSize int
	edit      func(i int, frame []byte) []byte
	arm       chan struct{} // closed by the test once both handshakes are done
	armed     chan struct{} // closed by the proxy when it cuts frames
	mu        sync.Mutex
	wire      bytes.Buffer
	wg        sync.WaitGroup
}

func newTamperProxy(t *testing.T, target string, frameSize int, edit func(int, []byte) []byte) *tamperProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tamperProxy{ln: ln, target: target, frameSize: frameSize, edit: edit,
		arm: make(chan struct{}), armed: make(chan struct{})}
	p.wg.Go(p.serve)
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *tamperProxy) serve() {
	client, err := p.ln.Accept()
	if err != nil {
		return
	}
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	p.wg.Go(func() { _, _ = io.Copy(client, server); client.Close() })
	// Before arming: the handshake, forwarded as it comes.
	buf := make([]byte, 64<<10)
	for armed := false; !armed; {
		select {
		case <-p.arm:
			armed = true
		default:
		}
		_ = client.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		n, err := client.Read(buf)
		if _, werr := server.Write(buf[:n]); werr != nil {
			return
		}
		if err != nil && !isTimeout(err) {
			server.Close()
			return
		}
	}
	_ = client.SetReadDeadline(time.Time{})
	close(p.armed)
	frame := make([]byte, p.frameSize)
	for i := 0; ; i++ {
		if _, err := io.ReadFull(client, frame); err != nil {
			server.Close()
			return
		}
		out := p.edit(i, bytes.Clone(frame))
		p.mu.Lock()
		p.wire.Write(out)
		p.mu.Unlock()
		if _, err := server.Write(out); err != nil {
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestFrameTampering puts a man in the middle of a data link after the
// handshake: with MAC or Encrypt every change is refused with ErrFrameAuth,
// with None it goes through unseen; with Encrypt the floats are not on the
// wire.
func TestFrameTampering(t *testing.T) {
	const size = 4096
	pattern := bytes.Repeat([]byte("GRADIENT"), size/8)
	sends := [][]byte{nil, bytes.Clone(pattern), bytes.Clone(pattern)} // by step
	copy(sends[1], "STEP0001")
	copy(sends[2], "STEP0002")
	var first []byte // the first frame seen on the wire, for the replay
	attacks := []struct {
		name string
		edit func(i int, frame []byte) []byte
	}{
		{"none", func(_ int, f []byte) []byte { return f }},
		{"flip a payload bit", func(i int, f []byte) []byte {
			if i == 0 {
				f[HeaderSize+100] ^= 1
			}
			return f
		}},
		{"forge a frame", func(i int, f []byte) []byte {
			if i > 0 {
				return f
			}
			forged := rawHeader(Header{Type: FrameData, Epoch: 1, Step: 1, Length: size})
			forged = append(forged, bytes.Repeat([]byte("FORGED!!"), size/8)...)
			return append(forged, f[len(forged):]...) // same length: a tag's room left as it was
		}},
		{"replay an old frame", func(i int, f []byte) []byte {
			if i == 0 {
				first = bytes.Clone(f)
				return f
			}
			old := bytes.Clone(first)
			h, _ := parseHeader(old)
			h.Step = uint64(i + 1)
			h.put(old)
			return old
		}},
	}
	for _, p := range []Protection{ProtectNone, ProtectMAC, ProtectEncrypt} {
		for _, a := range attacks {
			t.Run(fmt.Sprintf("%v/%s", p, a.name), func(t *testing.T) {
				first = nil
				cfg := withProtection(p)
				lns := []*Listener{listen(t, cfg), listen(t, cfg)}
				frameSize := HeaderSize + size
				if p != ProtectNone {
					frameSize += tagSize
				}
				proxy := newTamperProxy(t, lns[1].Addr().String(), frameSize, a.edit)
				addrs := []string{lns[0].Addr().String(), proxy.ln.Addr().String()}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				meshes := make([]*Mesh, 2)
				errs := make([]error, 2)
				var wg sync.WaitGroup
				for r := range 2 {
					wg.Go(func() { meshes[r], errs[r] = Connect(ctx, lns[r], cfg, 1, r, addrs, []int{1 - r}) })
				}
				wg.Wait()
				if err := errors.Join(errs...); err != nil {
					t.Fatalf("connect through the proxy: %v", err)
				}
				defer meshes[0].Close()
				defer meshes[1].Close()
				close(proxy.arm)
				select {
				case <-proxy.armed:
				case <-ctx.Done():
					t.Fatal("the proxy did not arm")
				}
				// Rank 0 dialed, so its frames to rank 1 pass the tampering side.
				var recvErr error
				changed := false // some step received other bytes than were sent
				got := make([]byte, size)
				for step := 1; step <= 2 && recvErr == nil; step++ {
					var sendErr error
					wg.Go(func() { sendErr = meshes[0].Exchange(ctx, 1, sends[step], -1, nil, uint64(step), 0) })
					recvErr = meshes[1].Exchange(ctx, -1, nil, 0, got, uint64(step), 0)
					wg.Wait()
					if recvErr == nil && sendErr != nil {
						t.Fatalf("step %d: send: %v", step, sendErr)
					}
					changed = changed || (recvErr == nil && !bytes.Equal(got, sends[step]))
				}
				tampered := a.name != "none"
				switch {
				case p == ProtectNone && recvErr != nil:
					t.Fatalf("unprotected link: %v", recvErr)
				case p == ProtectNone && tampered != changed:
					t.Fatalf("unprotected link: tampered %v, received data changed %v", tampered, changed)
				case p != ProtectNone && tampered && !errors.Is(recvErr, ErrFrameAuth):
					t.Fatalf("recv: %v, want ErrFrameAuth", recvErr)
				case p != ProtectNone && (changed || !tampered && recvErr != nil):
					t.Fatalf("protected link: err %v, data changed %v", recvErr, changed)
				}
				proxy.mu.Lock()
				visible := bytes.Contains(proxy.wire.Bytes(), []byte("GRADIENTGRADIENT"))
				proxy.mu.Unlock()
				if !tampered && visible == (p == ProtectEncrypt) {
					t.Errorf("%v: plaintext visible on the wire = %v", p, visible)
				}
			})
		}
	}
}

// BenchmarkSession measures sealing and opening one 1 MiB frame per level:
// the CPU cost that frame protection adds to each chunk of an allreduce.
func BenchmarkSession(b *testing.B) {
	const size = 1 << 20
	for _, p := range []Protection{ProtectMAC, ProtectEncrypt} {
		b.Run(p.String(), func(b *testing.B) {
			hello, nonce := []byte("hello"), []byte("server nonce")
			tx, err := newSession(p, []byte("secret"), hello, nonce, true)
			if err != nil {
				b.Fatal(err)
			}
			rx, _ := newSession(p, []byte("secret"), hello, nonce, false)
			hdr := rawHeader(Header{Type: FrameData, Length: size})
			payload, got := make([]byte, size), make([]byte, size)
			var scratch []byte
			b.SetBytes(size)
			for b.Loop() {
				wire := tx.sealFrame(hdr, payload, &scratch)
				if p == ProtectMAC {
					got = payload
				}
				if err := rx.openFrame(hdr, got, wire); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
