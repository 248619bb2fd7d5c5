package transport

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Limits of the handshake messages. Every length a message claims (string,
// binary, array, map) is checked against them, and against the bytes left in
// the (already length-checked) frame payload, before anything is allocated
// for it: a 30-byte hello cannot make the node allocate more than it holds.
const (
	// NonceSize is the size of both nonces of the handshake.
	NonceSize = 32
	// macSize is the size of an HMAC-SHA256.
	macSize = sha256.Size
	// MaxNameBytes bounds the cluster name and the run digest in a hello.
	MaxNameBytes = 256
	// maxReasonBytes bounds a refusal's reason (it quotes names, so it may
	// be a few times longer than one).
	maxReasonBytes = 2048
	// maxMsgFields bounds the entries of a message's top-level map.
	maxMsgFields = 16
	// maxKeyBytes bounds a field name.
	maxKeyBytes = 16
	// maxSkipDepth bounds the nesting of an unknown field's value.
	maxSkipDepth = 4
)

// errBadMessage: a handshake message is not what the protocol allows.
var errBadMessage = errors.New("malformed handshake message")

// msgReader decodes one msgpack map from a payload, field by field, with
// every claimed length checked first.
type msgReader struct {
	what string // "hello", "challenge", ...: for errors
	r    *bytes.Reader
	d    *msgpack.Decoder
	seen map[string]bool
}

func newMsgReader(what string, p []byte) *msgReader {
	r := bytes.NewReader(p)
	// A bytes.Reader is an io.ByteScanner, so the decoder reads from r
	// directly, without a buffer of its own: r.Len() is what is left.
	return &msgReader{what: what, r: r, d: msgpack.NewDecoder(r), seen: map[string]bool{}}
}

func (m *msgReader) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", errBadMessage, m.what, fmt.Sprintf(format, args...))
}

// wrap turns a decoder error into a message error. A message cut short is
// io.ErrUnexpectedEOF, never io.EOF: the peer did send something.
func (m *msgReader) wrap(field string, err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return m.errorf("field %q: %v", field, err)
}

// fields calls f with each field name of the message's map; f must consume
// the value (with m's readers or m.skip).
func (m *msgReader) fields(f func(key string) error) error {
	code, err := m.d.PeekCode()
	if err != nil {
		return m.wrap("", err)
	}
	if !msgpcode.IsFixedMap(code) && code != msgpcode.Map16 && code != msgpcode.Map32 {
		return m.errorf("not a map (code %#x)", code)
	}
	n, err := m.d.DecodeMapLen()
	if err != nil {
		return m.wrap("", err)
	}
	if n > maxMsgFields || 2*n > m.r.Len() {
		return m.errorf("claims %d fields, at most %d allowed and %d bytes left", n, maxMsgFields, m.r.Len())
	}
	var kb [maxKeyBytes]byte
	for range n {
		kn, err := m.length("field name", maxKeyBytes, true)
		if err != nil {
			return err
		}
		if err := m.d.ReadFull(kb[:kn]); err != nil {
			return m.wrap("field name", err)
		}
		key := string(kb[:kn])
		if m.seen[key] {
			return m.errorf("field %q twice", key)
		}
		m.seen[key] = true
		if err := f(key); err != nil {
			return err
		}
	}
	if m.r.Len() != 0 {
		return m.errorf("%d bytes after the message", m.r.Len())
	}
	return nil
}

// length reads a string or binary header and checks the length it claims
// against max and against the bytes left; it returns -1 for nil.
func (m *msgReader) length(field string, max int, strOnly bool) (int, error) {
	code, err := m.d.PeekCode()
	if err != nil {
		return 0, m.wrap(field, err)
	}
	isStr := msgpcode.IsString(code)
	if !isStr && !(msgpcode.IsBin(code) && !strOnly) && code != msgpcode.Nil {
		return 0, m.errorf("field %q: not a string or bytes (code %#x)", field, code)
	}
	n, err := m.d.DecodeBytesLen()
	if err != nil {
		return 0, m.wrap(field, err)
	}
	if n < 0 {
		if strOnly {
			return 0, m.errorf("field %q: nil", field)
		}
		return -1, nil
	}
	if n > max {
		return 0, m.errorf("field %q claims %d bytes, at most %d allowed", field, n, max)
	}
	if n > m.r.Len() {
		return 0, m.errorf("field %q claims %d bytes, only %d left in the message", field, n, m.r.Len())
	}
	return n, nil
}

// bytes reads a binary or string field of at most max bytes.
func (m *msgReader) bytes(field string, max int) ([]byte, error) {
	n, err := m.length(field, max, false)
	if err != nil || n < 0 {
		return nil, err
	}
	b := make([]byte, n)
	if err := m.d.ReadFull(b); err != nil {
		return nil, m.wrap(field, err)
	}
	return b, nil
}

// fixed reads a binary field of exactly size bytes (or nil, when optional).
func (m *msgReader) fixed(field string, size int, optional bool) ([]byte, error) {
	b, err := m.bytes(field, size)
	if err != nil {
		return nil, err
	}
	if len(b) != size && !(optional && len(b) == 0) {
		return nil, m.errorf("field %q has %d bytes, want %d", field, len(b), size)
	}
	return b, nil
}

func (m *msgReader) string(field string, max int) (string, error) {
	b, err := m.bytes(field, max)
	return string(b), err
}

// scalar decodes an integer or bool field into v with the decoder; those
// never allocate by what they claim.
func (m *msgReader) scalar(field string, v any) error {
	code, err := m.d.PeekCode()
	if err != nil {
		return m.wrap(field, err)
	}
	var derr error
	switch p := v.(type) {
	case *int:
		if !isInt(code) {
			return m.errorf("field %q: not an integer (code %#x)", field, code)
		}
		*p, derr = m.d.DecodeInt()
	case *uint32:
		if !isInt(code) {
			return m.errorf("field %q: not an integer (code %#x)", field, code)
		}
		*p, derr = m.d.DecodeUint32()
	case *bool:
		if code != msgpcode.True && code != msgpcode.False {
			return m.errorf("field %q: not a bool (code %#x)", field, code)
		}
		*p, derr = m.d.DecodeBool()
	default:
		panic(fmt.Sprintf("msgReader.scalar: %T", v))
	}
	if derr != nil {
		return m.wrap(field, derr)
	}
	return nil
}

func isInt(c byte) bool {
	if msgpcode.IsFixedNum(c) {
		return true
	}
	switch c {
	case msgpcode.Uint8, msgpcode.Uint16, msgpcode.Uint32, msgpcode.Uint64,
		msgpcode.Int8, msgpcode.Int16, msgpcode.Int32, msgpcode.Int64:
		return true
	}
	return false
}

// skip consumes the value of a field this node does not know (a newer peer's
// addition), checking every length it claims against the bytes left.
func (m *msgReader) skip(field string) error { return m.skipDepth(field, 0) }

func (m *msgReader) skipDepth(field string, depth int) error {
	if depth > maxSkipDepth {
		return m.errorf("field %q nests deeper than %d", field, maxSkipDepth)
	}
	code, err := m.d.PeekCode()
	if err != nil {
		return m.wrap(field, err)
	}
	switch {
	case msgpcode.IsFixedMap(code) || code == msgpcode.Map16 || code == msgpcode.Map32:
		n, err := m.d.DecodeMapLen()
		if err != nil {
			return m.wrap(field, err)
		}
		if 2*n > m.r.Len() {
			return m.errorf("field %q claims a map of %d entries, only %d bytes left", field, n, m.r.Len())
		}
		for range 2 * n {
			if err := m.skipDepth(field, depth+1); err != nil {
				return err
			}
		}
	case msgpcode.IsFixedArray(code) || code == msgpcode.Array16 || code == msgpcode.Array32:
		n, err := m.d.DecodeArrayLen()
		if err != nil {
			return m.wrap(field, err)
		}
		if n > m.r.Len() {
			return m.errorf("field %q claims an array of %d elements, only %d bytes left", field, n, m.r.Len())
		}
		for range n {
			if err := m.skipDepth(field, depth+1); err != nil {
				return err
			}
		}
	case msgpcode.IsString(code) || msgpcode.IsBin(code):
		n, err := m.length(field, MaxControlBytes, false)
		if err != nil {
			return err
		}
		if _, err := m.r.Seek(int64(n), io.SeekCurrent); err != nil {
			return m.wrap(field, err)
		}
	case msgpcode.IsExt(code) || msgpcode.IsFixedExt(code):
		return m.errorf("field %q: extension types are not allowed", field)
	default: // nil, bool, numbers: at most 8 bytes
		if err := m.d.Skip(); err != nil {
			return m.wrap(field, err)
		}
	}
	return nil
}

func decodeHello(p []byte, h *Hello) error {
	m := newMsgReader("hello", p)
	err := m.fields(func(key string) (err error) {
		switch key {
		case "v":
			return m.scalar(key, &h.Version)
		case "c":
			h.Cluster, err = m.string(key, MaxNameBytes)
		case "d":
			h.RunDigest, err = m.string(key, MaxNameBytes)
		case "e":
			return m.scalar(key, &h.Epoch)
		case "f":
			return m.scalar(key, &h.From)
		case "t":
			return m.scalar(key, &h.To)
		case "n":
			h.Nonce, err = m.fixed(key, NonceSize, false)
		case "p":
			var p int
			if err := m.scalar(key, &p); err != nil {
				return err
			}
			if p < int(ProtectNone) || p > int(ProtectEncrypt) {
				return m.errorf("field %q: protection %d, want %d to %d", key, p, ProtectNone, ProtectEncrypt)
			}
			h.Protect = Protection(p)
		default:
			return m.skip(key)
		}
		return err
	})
	switch {
	case err != nil:
	case !m.seen["n"]:
		err = m.errorf("no nonce")
	case !m.seen["p"]:
		err = m.errorf("no frame protection")
	}
	return err
}

func decodeChallenge(p []byte, ch *challenge) error {
	m := newMsgReader("challenge", p)
	err := m.fields(func(key string) (err error) {
		if key == "n" {
			ch.Nonce, err = m.fixed(key, NonceSize, false)
			return err
		}
		return m.skip(key)
	})
	if err == nil && !m.seen["n"] {
		err = m.errorf("no nonce")
	}
	return err
}

func decodeProof(p []byte, pr *proof) error {
	m := newMsgReader("proof", p)
	err := m.fields(func(key string) (err error) {
		if key == "m" {
			pr.MAC, err = m.fixed(key, macSize, false)
			return err
		}
		return m.skip(key)
	})
	if err == nil && !m.seen["m"] {
		err = m.errorf("no MAC")
	}
	return err
}

func decodeVerdict(p []byte, vd *verdict) error {
	m := newMsgReader("verdict", p)
	return m.fields(func(key string) (err error) {
		switch key {
		case "ok":
			return m.scalar(key, &vd.OK)
		case "r":
			vd.Reason, err = m.string(key, maxReasonBytes)
		case "m":
			vd.MAC, err = m.fixed(key, macSize, true)
		default:
			return m.skip(key)
		}
		return err
	})
}

// decodeMsg decodes a handshake message into v, one of *Hello, *challenge,
// *proof, *verdict.
func decodeMsg(p []byte, v any) error {
	switch v := v.(type) {
	case *Hello:
		return decodeHello(p, v)
	case *challenge:
		return decodeChallenge(p, v)
	case *proof:
		return decodeProof(p, v)
	case *verdict:
		return decodeVerdict(p, v)
	}
	panic(fmt.Sprintf("decodeMsg: %T", v))
}
