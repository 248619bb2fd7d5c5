package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

const gib = 1 << 30

// mp builds raw msgpack bytes.
type mp struct{ bytes.Buffer }

func (b *mp) fixmap(n int) *mp  { b.WriteByte(0x80 | byte(n)); return b }
func (b *mp) key(k string) *mp  { b.WriteByte(0xa0 | byte(len(k))); b.WriteString(k); return b }
func (b *mp) raw(p ...byte) *mp { b.Write(p); return b }
func (b *mp) u32(code byte, n uint32) *mp {
	b.WriteByte(code)
	return b.raw(binary.BigEndian.AppendUint32(nil, n)...)
}
func (b *mp) bin(p []byte) *mp { b.raw(0xc4, byte(len(p))); return b.raw(p...) }
func (b *mp) str(s string) *mp { b.raw(0xd9, byte(len(s))); b.WriteString(s); return b }

// hostileHellos are hellos of a few dozen bytes that claim huge lengths.
func hostileHellos() []struct {
	name, want string
	msg        []byte
} {
	tail := []byte("xxxxxxxx") // a few real bytes after the claim
	return []struct {
		name, want string
		msg        []byte
	}{
		{"1 GiB nonce (bin32)", `field "n" claims 1073741824 bytes, at most 32 allowed`,
			new(mp).fixmap(2).key("v").raw(1).key("n").u32(0xc6, gib).raw(tail...).Bytes()},
		{"4 GiB-1 nonce as str32", `field "n" claims 4294967295 bytes`,
			new(mp).fixmap(1).key("n").u32(0xdb, 1<<32-1).raw(tail...).Bytes()},
		{"1 GiB cluster (str32)", `field "c" claims 1073741824 bytes, at most 256 allowed`,
			new(mp).fixmap(2).key("v").raw(1).key("c").u32(0xdb, gib).raw(tail...).Bytes()},
		{"1 GiB run digest (bin32)", `field "d" claims 1073741824 bytes`,
			new(mp).fixmap(1).key("d").u32(0xc6, gib).raw(tail...).Bytes()},
		{"short nonce", `field "n" has 4 bytes, want 32`,
			new(mp).fixmap(1).key("n").bin([]byte("abcd")).Bytes()},
		{"257-byte cluster", `field "c" claims 257 bytes, at most 256 allowed`,
			new(mp).fixmap(1).key("c").raw(0xda, 1, 1).raw(make([]byte, 257)...).Bytes()},
		{"map32 of 4 G fields", `claims 4294967295 fields`,
			new(mp).u32(0xdf, 1<<32-1).raw(tail...).Bytes()},
		{"1 GiB field name", `field "field name" claims 1073741824 bytes, at most 16 allowed`,
			new(mp).fixmap(1).u32(0xdb, gib).raw(tail...).Bytes()},
		{"unknown field, 1 GiB bin", `field "zz" claims 1073741824 bytes`,
			new(mp).fixmap(1).key("zz").u32(0xc6, gib).raw(tail...).Bytes()},
		{"unknown field, array32 of 1 G", `field "zz" claims an array of 1073741824 elements`,
			new(mp).fixmap(1).key("zz").u32(0xdd, gib).raw(tail...).Bytes()},
		{"unknown field, deep nesting", `nests deeper than`,
			new(mp).fixmap(1).key("zz").raw(bytes.Repeat([]byte{0x91}, 1000)...).raw(0xc0).Bytes()},
		{"not a map", `not a map`, []byte{0x93, 1, 2, 3}},
		{"version as string", `field "v": not an integer`, new(mp).fixmap(1).key("v").str("1").Bytes()},
		{"cut short", `unexpected EOF`, new(mp).fixmap(2).key("v").raw(1).key("c").Bytes()},
		{"trailing bytes", `bytes after the message`, new(mp).fixmap(1).key("v").raw(1, 2).Bytes()},
		{"field twice", `field "v" twice`, new(mp).fixmap(2).key("v").raw(1).key("v").raw(1).Bytes()},
	}
}

// allocated runs f and returns how many bytes were allocated meanwhile (by
// the whole process).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestDecodeHelloLimits(t *testing.T) {
	for _, tc := range hostileHellos() {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			d := allocated(func() {
				for range 10 {
					var h Hello
					err = decodeHello(tc.msg, &h)
				}
			})
			if !errors.Is(err, errBadMessage) {
				t.Fatalf("decodeHello: %v, want errBadMessage", err)
			}
			if errors.Is(err, io.EOF) {
				t.Errorf("decodeHello: %v wraps io.EOF (logged as a mere liveness probe)", err)
			}
			mustMention(t, err, tc.want)
			if d > 64<<10 {
				t.Errorf("10 decodes of a %d-byte hello allocated %d bytes", len(tc.msg), d)
			}
		})
	}
}

// TestDecodeRoundTrip: what the library encodes, the bounded decoders read
// back, unknown fields (of a newer peer) included.
func TestDecodeRoundTrip(t *testing.T) {
	h := Hello{Version: 1, Cluster: strings.Repeat("c", MaxNameBytes), RunDigest: "digest", Epoch: 1<<32 - 1, From: -3, To: 1 << 40, Nonce: nonce(), Protect: ProtectMAC}
	b, err := msgpack.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var got Hello
	if err := decodeHello(b, &got); err != nil {
		t.Fatalf("decodeHello: %v", err)
	}
	if fmt.Sprint(got) != fmt.Sprint(h) {
		t.Errorf("decoded %+v, want %+v", got, h)
	}
	b, err = msgpack.Marshal(struct {
		V     int              `msgpack:"v"`
		N     []byte           `msgpack:"n"`
		P     int              `msgpack:"p"`
		Extra map[string][]int `msgpack:"x"`
		F     float64          `msgpack:"fl"`
	}{2, nonce(), 2, map[string][]int{"a": {1, 2, 3}}, 1.5})
	if err != nil {
		t.Fatal(err)
	}
	got = Hello{}
	if err := decodeHello(b, &got); err != nil || got.Version != 2 {
		t.Errorf("hello with unknown fields: %+v, %v; want version 2", got, err)
	}

	msgs := []struct {
		in, out any
	}{
		{&challenge{Nonce: nonce()}, &challenge{}},
		{&proof{MAC: mac([]byte("s"), "l", []byte("h"), nonce())}, &proof{}},
		{&verdict{OK: true, MAC: mac([]byte("s"), "l", []byte("h"), nonce())}, &verdict{}},
		{&verdict{Reason: strings.Repeat("r", maxReasonBytes)}, &verdict{}},
	}
	for _, m := range msgs {
		b, err := msgpack.Marshal(m.in)
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeMsg(b, m.out); err != nil {
			t.Errorf("%T: %v", m.in, err)
		} else if fmt.Sprint(m.in) != fmt.Sprint(m.out) {
			t.Errorf("decoded %+v, want %+v", m.out, m.in)
		}
	}
	// Fixed sizes are enforced on the other messages too.
	for _, m := range []struct {
		v    any
		msg  []byte
		want string
	}{
		{&challenge{}, new(mp).fixmap(1).key("n").u32(0xc6, gib).Bytes(), `"n" claims 1073741824 bytes, at most 32`},
		{&challenge{}, new(mp).fixmap(0).Bytes(), "no nonce"},
		{&proof{}, new(mp).fixmap(1).key("m").u32(0xc6, gib).Bytes(), `"m" claims 1073741824 bytes, at most 32`},
		{&proof{}, new(mp).fixmap(1).key("m").bin(nil).Bytes(), `"m" has 0 bytes, want 32`},
		{&verdict{}, new(mp).fixmap(1).key("r").u32(0xdb, gib).Bytes(), `"r" claims 1073741824 bytes, at most 2048`},
	} {
		if err := decodeMsg(m.msg, m.v); !errors.Is(err, errBadMessage) {
			t.Errorf("%T: %v, want errBadMessage", m.v, err)
		} else {
			mustMention(t, err, m.want)
		}
	}
}

// TestListenerRefusesHugeClaims sends hellos (and a proof) claiming huge
// fields to a listener: each is refused at WARN with its reason, and the
// listener allocates nothing of the claimed size.
func TestListenerRefusesHugeClaims(t *testing.T) {
	logs := newLogBuffer()
	cfg := testConfig()
	cfg.Logger = logs.logger()
	cfg.RefusalLogInterval = -1 // each case checks its own line
	ln := listen(t, cfg)
	addr := ln.Addr().String()
	type hostile struct {
		name, want string
		run        func(t *testing.T, nc net.Conn)
	}
	var cases []hostile
	for _, hc := range hostileHellos() {
		cases = append(cases, hostile{hc.name, hc.want, func(t *testing.T, nc net.Conn) {
			if err := WriteFrame(nc, Header{Type: FrameHello}, hc.msg); err != nil {
				t.Fatal(err)
			}
		}})
	}
	cases = append(cases, hostile{"1 GiB MAC in the proof", `field "m" claims 1073741824 bytes, at most 32 allowed`,
		func(t *testing.T, nc net.Conn) {
			if err := sendMsg(nc, FrameHello, Hello{Version: ProtocolVersion, Cluster: "c", RunDigest: "d", Nonce: nonce(), Protect: ProtectNone}); err != nil {
				t.Fatal(err)
			}
			var ch challenge
			if _, err := recvMsg(nc, FrameChallenge, &ch); err != nil {
				t.Fatal(err)
			}
			msg := new(mp).fixmap(1).key("m").u32(0xc6, gib).raw([]byte("xxxx")...).Bytes()
			if err := WriteFrame(nc, Header{Type: FrameProof}, msg); err != nil {
				t.Fatal(err)
			}
		}})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc := rawConn(t, addr)
			if err := nc.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatal(err)
			}
			runtime.GC()
			var heap runtime.MemStats
			d := allocated(func() {
				tc.run(t, nc)
				readUntilClosed(t, nc, 5*time.Second)
				runtime.ReadMemStats(&heap)
			})
			// A goroutine or two and a few buffers: kilobytes, not a GiB.
			if d > 8<<20 {
				t.Errorf("%d bytes allocated while the listener refused the message", d)
			}
			line := logs.waitFor(t, 5*time.Second, "level=WARN", "refused connection", nc.LocalAddr().String(), strings.ReplaceAll(tc.want, `"`, `\"`))
			t.Logf("allocated %d KiB (heap in use %d MiB); logged: %s", d>>10, heap.HeapAlloc>>20, strings.TrimSpace(line))
		})
	}
}

// dialFrom opens a TCP connection to addr from the local IP from.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	return nc
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}

// TestListenerPendingCaps floods a listener with idle connections from one
// and from many loopback addresses: the excess over the caps is closed at
// once, so the listener holds no more descriptors than the caps allow, and a
// real ring still connects and exchanges data through it.
func TestListenerPendingCaps(t *testing.T) {
	const flood = 300
	tests := []struct {
		name        string
		sources     int // 127.0.0.2, 127.0.0.3, ...
		wantPending int
		// whether the caps leave room for the ring's two handshakes (from
		// 127.0.0.1) while the flood holds its slots; if not, the ring
		// connects once the flood hangs up.
		roomForRing bool
	}{
		{"one source", 1, defaultMaxPendingPerIP, true},
		{"many sources", 60, defaultMaxPending, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := newLogBuffer()
			cfg := testConfig()
			cfg.HandshakeTimeout = time.Minute // the flood stays pending
			target := cfg
			target.Logger = logs.logger()
			lns := []*Listener{listen(t, cfg), listen(t, cfg), listen(t, target)}
			ln := lns[2] // ranks 0 and 1 dial it
			addr := ln.Addr().String()
			before := countFDs(t)

			closedByServer := make(chan net.Conn, flood)
			conns := make([]net.Conn, 0, flood)
			var readers sync.WaitGroup
			for i := range flood {
				nc := dialFrom(t, fmt.Sprintf("127.0.0.%d", 2+i%tc.sources), addr)
				conns = append(conns, nc)
				readers.Go(func() {
					var b [1]byte
					if _, err := nc.Read(b[:]); err == io.EOF || errors.Is(err, syscall.ECONNRESET) {
						closedByServer <- nc
					}
				})
			}
			defer func() {
				for _, nc := range conns {
					nc.Close()
				}
				readers.Wait()
			}()
			// Wait for the server to close every connection over the caps.
			timeout := time.After(10 * time.Second)
			for range flood - tc.wantPending {
				select {
				case nc := <-closedByServer:
					nc.Close()
				case <-timeout:
					total, _, _, _ := ln.pending(netip.Addr{})
					t.Fatalf("the server closed fewer than %d of %d idle connections within 10 s (%d pending)", flood-tc.wantPending, flood, total)
				}
			}
			total, _, peak, peakPerIP := ln.pending(netip.Addr{})
			if total != tc.wantPending || peak > defaultMaxPending || peakPerIP > defaultMaxPendingPerIP {
				t.Errorf("pending %d (peak %d, peak per IP %d), want %d (caps %d, %d per IP)",
					total, peak, peakPerIP, tc.wantPending, defaultMaxPending, defaultMaxPendingPerIP)
			}
			// Each pending connection holds two descriptors in this process:
			// the client's and the server's.
			fds := countFDs(t) - before
			if fds > 2*tc.wantPending+16 {
				t.Errorf("%d descriptors open after a flood of %d, want about %d", fds, flood, 2*tc.wantPending)
			}
			logs.waitFor(t, 5*time.Second, "level=WARN", "too many pending handshakes")
			t.Logf("flood of %d from %d source(s): %d pending, %d more fds than before", flood, tc.sources, total, fds)

			if !tc.roomForRing {
				short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				_, err := Dial(short, addr, cfg, 1, 0, 2)
				cancel()
				if err == nil {
					t.Fatal("a Dial got through a full listener")
				}
				for _, nc := range conns { // the flood hangs up
					nc.Close()
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			meshes, err := connectRing(t, ctx, lns, cfg, 1)
			if err != nil {
				t.Fatalf("connect a ring through the flooded listener: %v", err)
			}
			n := len(meshes)
			tos, froms, sends, recvs := make([]int, n), make([]int, n), make([][]byte, n), make([][]byte, n)
			for r := range n {
				tos[r], froms[r] = (r+1)%n, (r+n-1)%n
				sends[r], recvs[r] = make([]byte, 1024), make([]byte, 1024)
				fill(sends[r], r, 1)
			}
			if err := runExchanges(ctx, meshes, tos, froms, sends, recvs, 1, 0); err != nil {
				t.Fatalf("exchange through the flooded listener: %v", err)
			}
			for r := range n {
				if !bytes.Equal(recvs[r], sends[froms[r]]) {
					t.Errorf("%s received wrong bytes", rankName(r))
				}
			}
		})
	}
}

// failingListener fails Accept with err the first fails times, recording
// when, then blocks until closed.
type failingListener struct {
	err    error
	fails  int
	mu     sync.Mutex
	calls  []time.Time
	failed chan struct{} // closed after the last failure
	closed chan struct{}
	once   sync.Once
}

func (f *failingListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	f.calls = append(f.calls, time.Now())
	n := len(f.calls)
	f.mu.Unlock()
	if n <= f.fails {
		if n == f.fails {
			close(f.failed)
		}
		return nil, f.err
	}
	<-f.closed
	return nil, net.ErrClosed
}

func (f *failingListener) Close() error   { f.once.Do(func() { close(f.closed) }); return nil }
func (f *failingListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// TestAcceptBackoff: accept errors such as EMFILE are retried after a pause
// that doubles from 5 ms (up to 1 s), not in a tight loop, and Close ends a
// pause at once.
func TestAcceptBackoff(t *testing.T) {
	const fails = 7 // pauses of 5, 10, 20, 40, 80 and 160 ms between them
	logs := newLogBuffer()
	cfg := testConfig()
	cfg.Logger = logs.logger()
	f := &failingListener{fails: fails, failed: make(chan struct{}), closed: make(chan struct{}),
		err: &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}}
	l := newListener(f, cfg)
	select {
	case <-f.failed:
	case <-time.After(5 * time.Second):
		l.Close()
		t.Fatal("the accept loop did not retry 7 times within 5 s")
	}
	// Now in a 320 ms pause: Close must not wait for it.
	within(t, 100*time.Millisecond, "Close during an accept backoff", func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) != fails {
		t.Errorf("Accept called %d times, want %d", len(f.calls), fails)
	}
	want := minAcceptBackoff
	for i := 1; i < len(f.calls); i++ {
		if gap := f.calls[i].Sub(f.calls[i-1]); gap < want {
			t.Errorf("retry %d came after %v, want at least %v", i, gap, want)
		}
		want = min(2*want, maxAcceptBackoff)
	}
	if n := strings.Count(logs.String(), "accept failed"); n != fails {
		t.Errorf("%d log lines for %d accept errors", n, fails)
	}
	mustMention(t, errors.New(logs.String()), "too many open files", "retry_in=160ms")
}

// TestRefusalLogRateLimit: 100 refusals from one source make one WARN line
// and one summary with the count of the others.
func TestRefusalLogRateLimit(t *testing.T) {
	const refusals = 100
	logs := newLogBuffer()
	cfg := testConfig()
	cfg.Logger = logs.logger() // default interval: 10 s
	ln, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	junk := garbage(64)
	var wg sync.WaitGroup
	for range 4 { // 4 at a time: under the per-source cap
		wg.Go(func() {
			for range refusals / 4 {
				sendRaw(t, addr, junk)
			}
		})
	}
	wg.Wait()
	// sendRaw saw each connection closed, which the server does after it
	// has logged or counted the refusal. Close writes the pending summary.
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	var warns []string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "refused connection") {
			warns = append(warns, line)
		}
	}
	if len(warns) != 2 {
		t.Fatalf("%d WARN lines for %d refusals from one source, want 2:\n%s", len(warns), refusals, strings.Join(warns, ""))
	}
	mustMention(t, errors.New(warns[0]), "bad magic", "remote=127.0.0.1:")
	mustMention(t, errors.New(warns[1]), "rate-limited", "remote_ip=127.0.0.1", fmt.Sprintf("suppressed=%d", refusals-1), "bad magic")
	t.Logf("logged:\n%s", strings.Join(warns, ""))
}

// TestRefusalLogSummaryTimer: the summary comes at the end of the interval
// without waiting for another refusal or Close, and sources are limited
// separately.
func TestRefusalLogSummaryTimer(t *testing.T) {
	logs := newLogBuffer()
	r := newRefusalLog(logs.logger(), 50*time.Millisecond)
	defer r.close()
	for i := range 10 {
		r.refused(0, "10.0.0.1", fmt.Sprintf("10.0.0.1:%d", 1000+i), errors.New("nope"))
	}
	r.refused(0, "10.0.0.2", "10.0.0.2:1", errors.New("other"))
	logs.waitFor(t, 5*time.Second, "remote_ip=10.0.0.1", "suppressed=9", "last_remote=10.0.0.1:1009")
	if n := strings.Count(logs.String(), "\n"); n != 3 {
		t.Errorf("%d lines, want 3:\n%s", n, logs.String())
	}
	logs.waitFor(t, time.Second, "remote=10.0.0.2:1", "other")
}
