package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderSize is the size of a frame header in bytes.
const HeaderSize = 24

// magic opens every frame header ("dM").
const magic uint16 = 0x4d64

// MaxControlBytes bounds the payload of a control frame (the handshake).
const MaxControlBytes = 64 << 10

// FrameType says what a frame carries.
type FrameType uint8

// Frame types.
const (
	FrameData      FrameType = 1 // a piece of a collective: raw floats
	FrameHello     FrameType = 2 // handshake, client to server
	FrameChallenge FrameType = 3 // handshake, server's nonce
	FrameProof     FrameType = 4 // handshake, client's MAC
	FrameVerdict   FrameType = 5 // handshake, server's accept or refusal
	// FrameClaim (no payload, protected like data frames): the accepting
	// rank took the connection into its ring attempt, and the dialer's
	// answer that it still uses it (see Connect).
	FrameClaim FrameType = 6
)

// Errors of the frame codec.
var (
	// ErrFrameTooLarge: a header announced a payload above the allowed
	// maximum; nothing was allocated for it.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrBadMagic: the bytes are not a dmlrun frame (a stranger, or a stream
	// out of step).
	ErrBadMagic = errors.New("not a dmlrun frame (bad magic)")
)

// Header is a frame's fixed header. Epoch is the ring epoch, Step the
// collective's sequence number, Chunk the piece within it.
type Header struct {
	Type   FrameType
	Epoch  uint32
	Step   uint64
	Chunk  uint32
	Length uint32
}

// Layout: magic u16 | type u8 | reserved u8 | epoch u32 | step u64 | chunk u32 | length u32, little-endian.
func (h Header) put(b []byte) {
	_ = b[HeaderSize-1]
	binary.LittleEndian.PutUint16(b[0:], magic)
	b[2] = byte(h.Type)
	b[3] = 0
	binary.LittleEndian.PutUint32(b[4:], h.Epoch)
	binary.LittleEndian.PutUint64(b[8:], h.Step)
	binary.LittleEndian.PutUint32(b[16:], h.Chunk)
	binary.LittleEndian.PutUint32(b[20:], h.Length)
}

func parseHeader(b []byte) (Header, error) {
	_ = b[HeaderSize-1]
	if binary.LittleEndian.Uint16(b[0:]) != magic || b[3] != 0 {
		return Header{}, fmt.Errorf("%w: header % x", ErrBadMagic, b[:4])
	}
	return Header{
		Type:   FrameType(b[2]),
		Epoch:  binary.LittleEndian.Uint32(b[4:]),
		Step:   binary.LittleEndian.Uint64(b[8:]),
		Chunk:  binary.LittleEndian.Uint32(b[16:]),
		Length: binary.LittleEndian.Uint32(b[20:]),
	}, nil
}

// WriteFrame writes header h (its Length set from payload) and payload in one
// write.
func WriteFrame(w io.Writer, h Header, payload []byte) error {
	buf := make([]byte, HeaderSize+len(payload))
	h.Length = uint32(len(payload))
	h.put(buf)
	copy(buf[HeaderSize:], payload)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one frame. A payload longer than max is refused with
// ErrFrameTooLarge before anything is allocated for it.
func ReadFrame(r io.Reader, max int) (Header, []byte, error) {
	var hb [HeaderSize]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		return Header{}, nil, err
	}
	h, err := parseHeader(hb[:])
	if err != nil {
		return h, nil, err
	}
	if int64(h.Length) > int64(max) {
		return h, nil, fmt.Errorf("%w: %d bytes announced, at most %d allowed", ErrFrameTooLarge, h.Length, max)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r, p); err != nil {
		if err == io.EOF { // cut right after the header: not a clean end of stream
			err = io.ErrUnexpectedEOF
		}
		return h, nil, fmt.Errorf("frame payload: %w", err)
	}
	return h, p, nil
}
