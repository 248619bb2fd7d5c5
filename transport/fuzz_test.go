package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// The seeds of these fuzzers are in testdata/fuzz/<FuzzName>/.

// checkHello fails t when a decoded hello holds a field beyond its bound.
// The nonce is NonceSize bytes, or none: decodeHello (unlike
// decodeChallenge) accepts a hello without an "n" field.
func checkHello(t *testing.T, h *Hello) {
	t.Helper()
	if len(h.Cluster) > MaxNameBytes || len(h.RunDigest) > MaxNameBytes {
		t.Fatalf("hello with a cluster of %d bytes and a run digest of %d, at most %d allowed", len(h.Cluster), len(h.RunDigest), MaxNameBytes)
	}
	if len(h.Nonce) != 0 && len(h.Nonce) != NonceSize {
		t.Fatalf("hello with a nonce of %d bytes, want %d", len(h.Nonce), NonceSize)
	}
}

// FuzzDecodeHandshake feeds arbitrary payloads to the bounded decoders of
// the four handshake messages: none may panic or return a field beyond its
// bound, and what one accepts, msgpack.Unmarshal reads the same way.
func FuzzDecodeHandshake(f *testing.F) {
	f.Fuzz(func(t *testing.T, p []byte) {
		var h Hello
		err := decodeHello(p, &h)
		checkHello(t, &h)
		if err != nil && !errors.Is(err, errBadMessage) {
			t.Fatalf("decodeHello: %v does not wrap errBadMessage", err)
		}
		if err != nil && errors.Is(err, io.EOF) {
			t.Fatalf("decodeHello: %v wraps io.EOF", err)
		}
		if err == nil {
			// Every length was checked: the library's decoder is safe here.
			var lib Hello
			if err := msgpack.Unmarshal(p, &lib); err != nil {
				t.Fatalf("decodeHello accepts % x, msgpack.Unmarshal: %v", p, err)
			}
			if lib.Version != h.Version || lib.Cluster != h.Cluster || lib.RunDigest != h.RunDigest ||
				lib.Epoch != h.Epoch || lib.From != h.From || lib.To != h.To || !bytes.Equal(lib.Nonce, h.Nonce) {
				t.Fatalf("decodeHello gives %+v, msgpack.Unmarshal %+v", h, lib)
			}
		}

		var ch challenge
		err = decodeChallenge(p, &ch)
		if len(ch.Nonce) > NonceSize || err == nil && len(ch.Nonce) != NonceSize {
			t.Fatalf("challenge with a nonce of %d bytes (err %v)", len(ch.Nonce), err)
		}

		var pr proof
		err = decodeProof(p, &pr)
		if len(pr.MAC) > macSize || err == nil && len(pr.MAC) != macSize {
			t.Fatalf("proof with a MAC of %d bytes (err %v)", len(pr.MAC), err)
		}

		var vd verdict
		err = decodeVerdict(p, &vd)
		if len(vd.MAC) != 0 && len(vd.MAC) != macSize || len(vd.Reason) > maxReasonBytes {
			t.Fatalf("verdict with a MAC of %d bytes and a reason of %d (err %v)", len(vd.MAC), len(vd.Reason), err)
		}
		if err == nil {
			var lib verdict
			if err := msgpack.Unmarshal(p, &lib); err != nil {
				t.Fatalf("decodeVerdict accepts % x, msgpack.Unmarshal: %v", p, err)
			}
			if lib.OK != vd.OK || lib.Reason != vd.Reason || !bytes.Equal(lib.MAC, vd.MAC) {
				t.Fatalf("decodeVerdict gives %+v, msgpack.Unmarshal %+v", vd, lib)
			}
		}

		// decodeMsg dispatches to the same decoders.
		for _, v := range []any{new(Hello), new(challenge), new(proof), new(verdict)} {
			_ = decodeMsg(p, v)
		}
	})
}

// FuzzServerHandshake runs the server side of the handshake against a
// client that writes the fuzz bytes and closes (honest false), or that
// frames them as its hello and then answers the challenge with the right MAC
// (honest true, to reach the checks behind the authentication). The server
// must return within its handshake timeout without panicking, and refuse
// whatever does not come from a client that knows the secret.
func FuzzServerHandshake(f *testing.F) {
	const timeout = 200 * time.Millisecond
	f.Fuzz(func(t *testing.T, data []byte, honest bool) {
		cfg := testConfig()
		cfg.HandshakeTimeout = timeout
		srv, cli := net.Pipe()
		clientDone := make(chan struct{})
		go func() {
			defer close(clientDone)
			defer cli.Close()
			_ = cli.SetDeadline(time.Now().Add(10 * timeout))
			if !honest {
				drained := make(chan struct{})
				go func() { defer close(drained); _, _ = io.Copy(io.Discard, cli) }()
				_, _ = cli.Write(data)
				cli.Close()
				<-drained
				return
			}
			if err := WriteFrame(cli, Header{Type: FrameHello}, data); err != nil {
				return
			}
			var ch challenge
			if _, err := recvMsg(cli, FrameChallenge, &ch); err != nil {
				return
			}
			if err := sendMsg(cli, FrameProof, proof{MAC: mac(cfg.Secret, "dmlrun client", data, ch.Nonce)}); err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, cli)
		}()

		start := time.Now()
		h, _, err := serverHandshake(srv, &cfg)
		took := time.Since(start)
		srv.Close()
		<-clientDone

		// The deadline is set once, for the whole handshake; allow for a
		// loaded machine (the race detector, parallel fuzz workers).
		if took > timeout+2*time.Second {
			t.Fatalf("serverHandshake took %v with a handshake timeout of %v", took, timeout)
		}
		checkHello(t, &h)
		if err == nil {
			if !honest {
				t.Fatalf("serverHandshake accepted % x from a client that does not know the secret", data)
			}
			if h.Version != ProtocolVersion || h.Cluster != cfg.Cluster || h.RunDigest != cfg.RunDigest {
				t.Fatalf("serverHandshake accepted %+v", h)
			}
		}
	})
}
