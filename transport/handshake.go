package transport

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// ProtocolVersion is the wire protocol's version; peers must match. (3: a
// mesh's links are confirmed by claim frames after the handshake.)
const ProtocolVersion = 3

// Handshake errors.
var (
	// ErrAuth: a peer could not prove that it knows the cluster secret.
	ErrAuth = errors.New("authentication failed (different cluster secret?)")
	// ErrRefused: the other side refused the connection; RefusedError says why.
	ErrRefused = errors.New("connection refused by peer")
)

// RefusedError is the server's stated reason for refusing a connection.
type RefusedError struct {
	Addr   string
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s refused the connection: %s", e.Addr, e.Reason)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Hello is the client's opening message: who it is and whom it wants.
type Hello struct {
	Version   int    `msgpack:"v"`
	Cluster   string `msgpack:"c"`
	RunDigest string `msgpack:"d"`
	Epoch     uint32 `msgpack:"e"`
	From      int    `msgpack:"f"` // the dialing rank
	To        int    `msgpack:"t"` // the rank it expects to reach
	Nonce     []byte `msgpack:"n"`
	// Protect is what guards the frames after the handshake (None, MAC or
	// Encrypt): the dialer's choice, at least what the server requires.
	Protect Protection `msgpack:"p"`
}

type challenge struct {
	Nonce []byte `msgpack:"n"`
}

type proof struct {
	MAC []byte `msgpack:"m"`
}

type verdict struct {
	OK     bool   `msgpack:"ok"`
	Reason string `msgpack:"r,omitempty"`
	MAC    []byte `msgpack:"m,omitempty"` // the server's own proof
}

func nonce() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// mac binds the secret to both nonces and the whole hello, with a different
// label per direction so that one side's proof cannot be replayed as the other's.
func mac(secret []byte, label string, hello, serverNonce []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(label))
	h.Write(hello)
	h.Write(serverNonce)
	return h.Sum(nil)
}

func sendMsg(nc net.Conn, t FrameType, v any) error {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return err
	}
	return WriteFrame(nc, Header{Type: t}, b)
}

// recvMsg reads one control frame (at most MaxControlBytes, checked before
// the payload is allocated) of type want and decodes it into v, one of *Hello,
// *challenge, *proof, *verdict, with every length it claims checked against
// the message's limits before anything is allocated for it.
func recvMsg(nc net.Conn, want FrameType, v any) ([]byte, error) {
	h, p, err := ReadFrame(nc, MaxControlBytes)
	if err != nil {
		return nil, err
	}
	if h.Type == FrameVerdict && want != FrameVerdict {
		var vd verdict
		if err := decodeVerdict(p, &vd); err == nil && !vd.OK {
			return nil, &RefusedError{Addr: nc.RemoteAddr().String(), Reason: vd.Reason}
		}
	}
	if h.Type != want {
		return nil, fmt.Errorf("handshake: got frame type %d, want %d", h.Type, want)
	}
	// Not msgpack.Unmarshal: it allocates whatever length a field claims.
	if err := decodeMsg(p, v); err != nil {
		return nil, fmt.Errorf("handshake: bad message: %w", err)
	}
	return p, nil
}

// clientHandshake runs the dialing side and returns when the server has
// accepted the connection and proved that it knows the secret.
func clientHandshake(nc net.Conn, cfg *Config, h Hello, deadline time.Time) (*session, error) {
	if err := nc.SetDeadline(deadline); err != nil {
		return nil, err
	}
	h.Version = ProtocolVersion
	h.Protect = cfg.Protection.resolve(localIP(nc), remoteIP(nc))
	h.Cluster, h.RunDigest, h.Nonce = cfg.Cluster, cfg.RunDigest, nonce()
	hello, err := msgpack.Marshal(h)
	if err != nil {
		return nil, err
	}
	if err := WriteFrame(nc, Header{Type: FrameHello}, hello); err != nil {
		return nil, fmt.Errorf("handshake: send hello: %w", err)
	}
	var ch challenge
	if _, err := recvMsg(nc, FrameChallenge, &ch); err != nil {
		return nil, err
	}
	if err := sendMsg(nc, FrameProof, proof{MAC: mac(cfg.Secret, "dmlrun client", hello, ch.Nonce)}); err != nil {
		return nil, fmt.Errorf("handshake: send proof: %w", err)
	}
	var vd verdict
	if _, err := recvMsg(nc, FrameVerdict, &vd); err != nil {
		return nil, err
	}
	if !vd.OK {
		return nil, &RefusedError{Addr: nc.RemoteAddr().String(), Reason: vd.Reason}
	}
	if !hmac.Equal(vd.MAC, mac(cfg.Secret, "dmlrun server", hello, ch.Nonce)) {
		return nil, fmt.Errorf("server %s: %w", nc.RemoteAddr(), ErrAuth)
	}
	sess, err := newSession(h.Protect, cfg.Secret, hello, ch.Nonce, true)
	if err != nil {
		return nil, err
	}
	return sess, nc.SetDeadline(time.Time{})
}

// serverHandshake runs the accepting side. On success it returns the
// client's Hello and the frames' session (nil for ProtectNone); on failure it has told the client why (when the client got
// far enough to be told) and returns the reason.
func serverHandshake(nc net.Conn, cfg *Config) (Hello, *session, error) {
	var h Hello
	if err := nc.SetDeadline(time.Now().Add(cfg.handshakeTimeout())); err != nil {
		return h, nil, err
	}
	hello, err := recvMsg(nc, FrameHello, &h)
	if err != nil {
		return h, nil, err
	}
	refuse := func(format string, args ...any) (Hello, *session, error) {
		reason := fmt.Sprintf(format, args...)
		if len(reason) > maxReasonBytes {
			reason = reason[:maxReasonBytes]
		}
		_ = sendMsg(nc, FrameVerdict, verdict{Reason: reason})
		return h, nil, errors.New(reason)
	}
	if h.Version != ProtocolVersion {
		return refuse("protocol version %d, this node speaks %d", h.Version, ProtocolVersion)
	}
	sn := nonce()
	if err := sendMsg(nc, FrameChallenge, challenge{Nonce: sn}); err != nil {
		return h, nil, err
	}
	var p proof
	if _, err := recvMsg(nc, FrameProof, &p); err != nil {
		return h, nil, err
	}
	if !hmac.Equal(p.MAC, mac(cfg.Secret, "dmlrun client", hello, sn)) {
		_, _, _ = refuse("authentication failed: the cluster secrets differ")
		return h, nil, ErrAuth
	}
	if h.Cluster != cfg.Cluster {
		return refuse("cluster %q, this node belongs to %q", h.Cluster, cfg.Cluster)
	}
	if h.RunDigest != cfg.RunDigest {
		return refuse("run digest %.12s differs from this node's %.12s: the nodes run different job configurations", h.RunDigest, cfg.RunDigest)
	}
	if want := cfg.Protection.resolve(localIP(nc), remoteIP(nc)); h.Protect < want || h.Protect > ProtectEncrypt {
		return refuse("frame protection %v, this node requires %v on this link (cluster.frame_mac, cluster.encrypt)", h.Protect, want)
	}
	sess, err := newSession(h.Protect, cfg.Secret, hello, sn, false)
	if err != nil {
		return h, nil, err
	}
	if err := sendMsg(nc, FrameVerdict, verdict{OK: true, MAC: mac(cfg.Secret, "dmlrun server", hello, sn)}); err != nil {
		return h, nil, err
	}
	return h, sess, nc.SetDeadline(time.Time{})
}
