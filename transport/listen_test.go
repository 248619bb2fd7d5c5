package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// badClient is one way of knocking on a listener's door that must be turned
// away. run plays the client against addr and checks what it sees; it returns
// what the listener's log must then say (all substrings on one line).
type badClient struct {
	name string
	run  func(t *testing.T, addr string, cfg Config) (wantLog []string)
}

// dialAs dials addr as a rank of a cluster configured by edit(cfg), and
// checks that the refusal is reported at once (not retried until ctx ends).
func dialAs(t *testing.T, addr string, cfg Config, edit func(*Config)) error {
	t.Helper()
	edit(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	within(t, 2*time.Second, "a refused Dial", func() { _, err = Dial(ctx, addr, cfg, 1, 7, 2) })
	if !errors.Is(err, ErrRefused) && !errors.Is(err, ErrAuth) {
		t.Fatalf("Dial: %v, want ErrRefused or ErrAuth", err)
	}
	return err
}

// rawConn opens a plain TCP connection to addr, closed at the end of t.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// sendRaw writes b on a fresh connection and checks that the server closes
// it; it returns the client's address, which the server logs.
func sendRaw(t *testing.T, addr string, b []byte) string {
	t.Helper()
	nc := rawConn(t, addr)
	if _, err := nc.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
	readUntilClosed(t, nc, 5*time.Second)
	return nc.LocalAddr().String()
}

// garbage returns n random bytes that cannot start a frame.
func garbage(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	b[0] = 0xff // magic starts with 0x64
	return b
}

func badClients(handshakeTimeout time.Duration) []badClient {
	return []badClient{
		{"wrong secret", func(t *testing.T, addr string, cfg Config) []string {
			dialAs(t, addr, cfg, func(c *Config) { c.Secret = []byte("not the secret") })
			return []string{"refused connection", "authentication failed"}
		}},
		{"wrong cluster", func(t *testing.T, addr string, cfg Config) []string {
			err := dialAs(t, addr, cfg, func(c *Config) { c.Cluster = "other-cluster" })
			if !errors.Is(err, ErrRefused) {
				t.Errorf("Dial: %v, want ErrRefused", err)
			}
			mustMention(t, err, "cluster", "other-cluster")
			return []string{"refused connection", "other-cluster", "this node belongs to"}
		}},
		{"wrong run digest", func(t *testing.T, addr string, cfg Config) []string {
			err := dialAs(t, addr, cfg, func(c *Config) { c.RunDigest = "another-job" })
			if !errors.Is(err, ErrRefused) {
				t.Errorf("Dial: %v, want ErrRefused", err)
			}
			mustMention(t, err, "run digest", "another-job")
			return []string{"refused connection", "run digest another-job differs"}
		}},
		{"HTTP request", func(t *testing.T, addr string, cfg Config) []string {
			from := sendRaw(t, addr, []byte("GET / HTTP/1.0\r\nHost: dmlrun.example\r\n\r\n"))
			return []string{"refused connection", from, "bad magic"}
		}},
		{"random bytes", func(t *testing.T, addr string, cfg Config) []string {
			from := sendRaw(t, addr, garbage(200))
			return []string{"refused connection", from, "bad magic"}
		}},
		{"data frame instead of hello", func(t *testing.T, addr string, cfg Config) []string {
			var b bytes.Buffer
			if err := WriteFrame(&b, Header{Type: FrameData, Epoch: 1}, []byte("data")); err != nil {
				t.Fatal(err)
			}
			from := sendRaw(t, addr, b.Bytes())
			return []string{"refused connection", from, "got frame type 1, want 2"}
		}},
		{"huge frame", func(t *testing.T, addr string, cfg Config) []string {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			from := sendRaw(t, addr, rawHeader(Header{Type: FrameHello, Length: math.MaxUint32}))
			runtime.ReadMemStats(&after)
			// Everything else running allocates a few MB at most; a payload
			// buffer would be 4 GiB.
			if d := after.TotalAlloc - before.TotalAlloc; d > 256<<20 {
				t.Errorf("%d MiB allocated while the listener refused a 4 GiB frame", d>>20)
			}
			return []string{"refused connection", from, "frame too large", "4294967295 bytes announced"}
		}},
		{"other protocol version", func(t *testing.T, addr string, cfg Config) []string {
			nc := rawConn(t, addr)
			if err := nc.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatal(err)
			}
			if err := sendMsg(nc, FrameHello, Hello{Version: 99, Cluster: "c", RunDigest: "d", Nonce: nonce(), Protect: ProtectNone}); err != nil {
				t.Fatal(err)
			}
			var ch challenge
			_, err := recvMsg(nc, FrameChallenge, &ch)
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("after a hello of version 99: %v, want ErrRefused", err)
			}
			mustMention(t, err, "protocol version 99")
			readUntilClosed(t, nc, 5*time.Second)
			return []string{"refused connection", nc.LocalAddr().String(), "protocol version 99"}
		}},
		{"silent", func(t *testing.T, addr string, cfg Config) []string {
			nc := rawConn(t, addr)
			d := within(t, 5*time.Second, "waiting for the server to drop a silent client", func() {
				readUntilClosed(t, nc, 5*time.Second)
			})
			if d < handshakeTimeout*3/4 {
				t.Errorf("a silent client was dropped after %v, before the handshake timeout %v", d, handshakeTimeout)
			}
			return []string{"refused connection", nc.LocalAddr().String(), "i/o timeout"}
		}},
	}
}

// TestListenerRefusesBadClients runs every kind of bad client at once against
// one listener while a ring collective connects through that listener and
// exchanges data: each client must be turned away with its reason logged, and
// the collective must not notice.
func TestListenerRefusesBadClients(t *testing.T) {
	const handshakeTimeout = 250 * time.Millisecond
	logs := newLogBuffer()
	cfg := testConfig()
	cfg.HandshakeTimeout = handshakeTimeout
	target := cfg
	target.Logger = logs.logger()
	// Some twenty bad clients knock at once, all from 127.0.0.1, and each
	// checks its own log line: lift the per-source cap and the log's rate
	// limit (TestListenerPendingCaps and TestRefusalLogRateLimit test them).
	target.MaxPendingPerIP = -1
	target.RefusalLogInterval = -1
	// Rank 2 accepts from ranks 0 and 1: every link of the ring that it is in
	// comes through the listener under attack.
	lns := []*Listener{listen(t, cfg), listen(t, cfg), listen(t, target)}
	addr := lns[2].Addr().String()

	// A silent client that is already connected when the ring starts.
	early := rawConn(t, addr)

	stop := make(chan struct{})
	collective := make(chan error, 1)
	rounds := 0
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		meshes, err := connectRing(t, ctx, lns, cfg, 1)
		if err != nil {
			collective <- err
			return
		}
		n := len(meshes)
		sends, recvs := make([][]byte, n), make([][]byte, n)
		for r := range n {
			sends[r], recvs[r] = make([]byte, 4096), make([]byte, 4096)
		}
		// Keep exchanging, both ways round the ring, until every bad client
		// is done (and at least a few times).
		for seq := uint64(0); ; seq++ {
			select {
			case <-stop:
				if seq >= 4 {
					collective <- nil
					return
				}
			default:
			}
			tos, froms := make([]int, n), make([]int, n)
			for r := range n {
				next, prev := (r+1)%n, (r+n-1)%n
				if seq%2 == 1 {
					next, prev = prev, next
				}
				tos[r], froms[r] = next, prev
				fill(sends[r], r, seq)
				clear(recvs[r])
			}
			if err := runExchanges(ctx, meshes, tos, froms, sends, recvs, seq, 0); err != nil {
				collective <- err
				return
			}
			for r := range n {
				if !bytes.Equal(recvs[r], sends[froms[r]]) {
					collective <- fmt.Errorf("%s received wrong bytes at step %d", rankName(r), seq)
					return
				}
			}
			rounds++
		}
	}()

	var wg sync.WaitGroup
	for _, bc := range badClients(handshakeTimeout) {
		for i := range 2 { // two of each at once
			wg.Go(func() {
				t.Run(fmt.Sprintf("%s/%d", bc.name, i), func(t *testing.T) {
					if want := bc.run(t, addr, cfg); want != nil {
						logs.waitFor(t, 5*time.Second, want...)
					}
				})
			})
		}
	}
	t.Run("silent, connected first", func(t *testing.T) {
		readUntilClosed(t, early, 5*time.Second)
		logs.waitFor(t, 5*time.Second, "refused connection", early.LocalAddr().String(), "i/o timeout")
	})
	wg.Wait()
	close(stop)
	if err := <-collective; err != nil {
		t.Fatalf("the collective failed while bad clients knocked: %v", err)
	}
	t.Logf("%d exchange rounds ran while the bad clients were turned away", rounds)
}

// TestListenerCloseEndsConnections checks that Close returns promptly and
// closes connections mid-handshake and authenticated ones nobody claimed.
func TestListenerCloseEndsConnections(t *testing.T) {
	tests := []struct {
		name    string
		connect func(t *testing.T, addr string) net.Conn
	}{
		{"mid-handshake", func(t *testing.T, addr string) net.Conn {
			return rawConn(t, addr)
		}},
		{"authenticated, unclaimed", func(t *testing.T, addr string) net.Conn {
			nc := rawConn(t, addr)
			cfg := testConfig()
			if _, err := clientHandshake(nc, &cfg, Hello{Epoch: 1, From: 0, To: 1}, time.Now().Add(5*time.Second)); err != nil {
				t.Fatalf("handshake: %v", err)
			}
			return nc
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig() // default handshake timeout: 5 s
			ln, err := Listen("127.0.0.1:0", cfg)
			if err != nil {
				t.Fatal(err)
			}
			nc := tc.connect(t, ln.Addr().String())
			within(t, 2*time.Second, "Listener.Close", func() {
				if err := ln.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			within(t, 2*time.Second, "seeing the connection closed", func() { readUntilClosed(t, nc, 2*time.Second) })
			if err := ln.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if _, err := ln.Accept(ctx, 1, 0, 1); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" for valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no secret", func(c *Config) { c.Secret = nil }, "no cluster secret"},
		{"negative handshake timeout", func(c *Config) { c.HandshakeTimeout = -time.Second }, "HandshakeTimeout"},
		{"long cluster name", func(c *Config) { c.Cluster = string(make([]byte, 256)) }, "Cluster"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			mustMention(t, err, tc.want)
			if _, lerr := Listen("127.0.0.1:0", cfg); lerr == nil {
				t.Errorf("Listen accepted a config that Validate refuses")
			}
			if _, derr := Dial(context.Background(), "127.0.0.1:1", cfg, 1, 0, 1); derr == nil {
				t.Errorf("Dial accepted a config that Validate refuses")
			}
		})
	}
	cfg := testConfig()
	cfg.Secret = nil
	if err := cfg.Validate(); !errors.Is(err, ErrNoSecret) {
		t.Errorf("no secret: %v, want ErrNoSecret", err)
	}
}
