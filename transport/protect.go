package transport

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Protection says what guards a data-plane connection's frames after its
// handshake. The handshake itself is always authenticated; what follows is
// protected with keys derived from the secret and both nonces of that
// handshake, one key per direction.
type Protection uint8

// Protection levels, weakest first. On the wire a hello carries None, MAC or
// Encrypt, never Auto.
const (
	// ProtectAuto is MAC, except on a connection whose two ends are both
	// loopback addresses (-np on one host), where it is None: injecting into
	// an established loopback TCP stream takes root on that host, and root
	// can read the secret anyway, while a MAC would cost a third of the
	// loopback bandwidth.
	ProtectAuto Protection = iota
	// ProtectNone sends frames as they are: anyone on the path can read or
	// change the floats.
	ProtectNone
	// ProtectMAC appends an AES-GMAC tag (16 bytes) to every frame, over its
	// header and payload and bound to its position in the stream: a frame
	// injected, changed, replayed, dropped or reordered on the path is
	// refused. The payload stays readable on the path.
	ProtectMAC
	// ProtectEncrypt seals every payload with AES-128-GCM (header as
	// additional data): MAC's guarantees, and the floats cannot be read.
	ProtectEncrypt
)

// tagSize is the size of a frame's GCM tag.
const tagSize = 16

// ErrFrameAuth: a frame's tag did not verify: it was injected, changed,
// replayed or reordered between the peers, or the stream is out of step.
var ErrFrameAuth = errors.New("frame failed authentication (injected or changed on the path?)")

var protectionNames = [...]string{ProtectAuto: "auto", ProtectNone: "none", ProtectMAC: "mac", ProtectEncrypt: "encrypt"}

func (p Protection) String() string {
	if int(p) < len(protectionNames) {
		return protectionNames[p]
	}
	return fmt.Sprintf("protection(%d)", uint8(p))
}

// ParseProtection parses auto, none, mac or encrypt.
func ParseProtection(s string) (Protection, error) {
	for p, name := range protectionNames {
		if s == name {
			return Protection(p), nil
		}
	}
	return 0, fmt.Errorf("protection %q: want auto, none, mac or encrypt", s)
}

// resolve turns Auto into what it means for a link between local and remote.
func (p Protection) resolve(local, remote netip.Addr) Protection {
	if p != ProtectAuto {
		return p
	}
	if local.IsLoopback() && remote.IsLoopback() {
		return ProtectNone
	}
	return ProtectMAC
}

// session holds one connection's frame keys and counters. Each direction has
// its own key, and each frame's GCM nonce is its sequence number in that
// direction, so that no nonce is ever used twice under one key and a frame
// verifies only at its own place in the stream.
type session struct {
	level            Protection // MAC or Encrypt
	send, recv       cipher.AEAD
	sendSeq, recvSeq uint64
	nonce            [12]byte
	tag              [HeaderSize + tagSize]byte // MAC mode: Seal's output, header then tag
}

// newSession derives the frame keys of a connection whose handshake sent
// hello (the client's encoded Hello, which holds the client's nonce) and
// serverNonce. client says which side this is. It returns nil for
// ProtectNone.
func newSession(level Protection, secret, hello, serverNonce []byte, client bool) (*session, error) {
	if level == ProtectNone {
		return nil, nil
	}
	if level != ProtectMAC && level != ProtectEncrypt {
		return nil, fmt.Errorf("session: protection %v", level)
	}
	salt := make([]byte, 0, len(hello)+len(serverNonce))
	salt = append(append(salt, hello...), serverNonce...)
	key := func(dir string) (cipher.AEAD, error) {
		k, err := hkdf.Key(sha256.New, secret, salt, "dmlrun data plane "+level.String()+" "+dir, 16)
		if err != nil {
			return nil, err
		}
		b, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	}
	c2s, err := key("client to server")
	if err != nil {
		return nil, err
	}
	s2c, err := key("server to client")
	if err != nil {
		return nil, err
	}
	s := &session{level: level, send: c2s, recv: s2c}
	if !client {
		s.send, s.recv = s2c, c2s
	}
	return s, nil
}

func (s *session) nonceFor(seq uint64) []byte {
	binary.BigEndian.PutUint64(s.nonce[4:], seq)
	return s.nonce[:]
}

// macTag computes the tag of hdr and payload under aead at seq. GCM takes
// one additional-data slice, so the payload goes there (no copy) and the
// 24-byte header is sealed as the "plaintext": the tag covers both. The
// sealed header is thrown away; the receiver recomputes the same tag.
func (s *session) macTag(aead cipher.AEAD, seq uint64, hdr, payload []byte) []byte {
	out := aead.Seal(s.tag[:0], s.nonceFor(seq), hdr, payload)
	return out[HeaderSize:]
}

// sealFrame protects an outgoing frame. In MAC mode it returns the tag to
// send after the payload; in Encrypt mode it returns the ciphertext and tag
// (in *scratch, grown as needed) to send instead of the payload.
func (s *session) sealFrame(hdr, payload []byte, scratch *[]byte) []byte {
	seq := s.sendSeq
	s.sendSeq++
	if s.level == ProtectMAC {
		return s.macTag(s.send, seq, hdr, payload)
	}
	if cap(*scratch) < len(payload)+tagSize {
		*scratch = make([]byte, 0, len(payload)+tagSize)
	}
	return s.send.Seal((*scratch)[:0], s.nonceFor(seq), payload, hdr)
}

// openFrame verifies a complete incoming frame. In MAC mode wire is the
// received tag and payload the received floats; in Encrypt mode wire is the
// ciphertext and tag, decrypted into payload.
func (s *session) openFrame(hdr, payload, wire []byte) error {
	seq := s.recvSeq
	s.recvSeq++
	if s.level == ProtectMAC {
		if subtle.ConstantTimeCompare(s.macTag(s.recv, seq, hdr, payload), wire) != 1 {
			return ErrFrameAuth
		}
		return nil
	}
	if _, err := s.recv.Open(payload[:0], s.nonceFor(seq), wire, hdr); err != nil {
		return ErrFrameAuth
	}
	return nil
}
