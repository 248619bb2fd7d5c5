package transport

import (
	"bytes"
	"errors"
	"io"
	"math"
	"runtime"
	"strconv"
	"testing"
	"testing/iotest"
)

// encode returns the wire bytes of one frame.
func encode(t testing.TB, h Header, payload []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteFrame(&b, h, payload); err != nil {
		t.Fatalf("WriteFrame: %v", err)
	}
	return b.Bytes()
}

// rawHeader returns a header exactly as given, Length included, without the
// payload that it announces.
func rawHeader(h Header) []byte {
	b := make([]byte, HeaderSize)
	h.put(b)
	return b
}

// splitReader returns its chunks one Read at a time, so that a frame arrives
// cut at chosen places.
type splitReader struct{ chunks [][]byte }

func (r *splitReader) Read(p []byte) (int, error) {
	for len(r.chunks) > 0 && len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	return n, nil
}

// countingWriter records how many Write calls it got.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

func TestFrameRoundTrip(t *testing.T) {
	headers := []struct {
		name string
		h    Header
	}{
		{"zero", Header{}},
		{"data", Header{Type: FrameData, Epoch: 3, Step: 42, Chunk: 7}},
		{"max fields", Header{Type: FrameVerdict, Epoch: math.MaxUint32, Step: math.MaxUint64, Chunk: math.MaxUint32}},
		// Length is set by WriteFrame from the payload, whatever it was.
		{"stale length", Header{Type: FrameHello, Length: 12345}},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"plain", func(r io.Reader) io.Reader { return r }},
		{"one byte", iotest.OneByteReader},
		{"half", iotest.HalfReader},
		{"data with EOF", iotest.DataErrReader},
	}
	const max = 1 << 20
	for _, hc := range headers {
		for _, size := range []int{0, 1, HeaderSize, 70000} {
			payload := make([]byte, size)
			fill(payload, size, hc.h.Step)
			// Three frames back to back: ReadFrame must take exactly one
			// frame's bytes each time.
			var stream countingWriter
			for range 3 {
				if err := WriteFrame(&stream, hc.h, payload); err != nil {
					t.Fatal(err)
				}
			}
			if stream.writes != 3 {
				t.Errorf("%s/%d: WriteFrame made %d writes for 3 frames, want one each", hc.name, size, stream.writes)
			}
			if got, want := stream.Len(), 3*(HeaderSize+size); got != want {
				t.Fatalf("%s/%d: wrote %d bytes, want %d", hc.name, size, got, want)
			}
			for _, rc := range readers {
				t.Run(hc.name+"/"+rc.name+"/"+strconv.Itoa(size), func(t *testing.T) {
					r := rc.wrap(bytes.NewReader(stream.Bytes()))
					want := hc.h
					want.Length = uint32(size)
					for i := range 3 {
						h, p, err := ReadFrame(r, max)
						if err != nil {
							t.Fatalf("frame %d: %v", i, err)
						}
						if h != want {
							t.Errorf("frame %d: header %+v, want %+v", i, h, want)
						}
						if !bytes.Equal(p, payload) {
							t.Errorf("frame %d: payload differs (%d bytes, want %d)", i, len(p), size)
						}
					}
					if _, _, err := ReadFrame(r, max); err != io.EOF {
						t.Errorf("after the last frame: err = %v, want io.EOF", err)
					}
				})
			}
		}
	}
}

// TestReadFrameSplit feeds a small frame cut at every pair of places
// (including the empty cuts), as TCP may deliver it.
func TestReadFrameSplit(t *testing.T) {
	h := Header{Type: FrameData, Epoch: 1, Step: 2, Chunk: 3}
	payload := []byte("hello")
	frame := encode(t, h, payload)
	h.Length = uint32(len(payload))
	for i := 0; i <= len(frame); i++ {
		for j := i; j <= len(frame); j++ {
			r := &splitReader{chunks: [][]byte{
				bytes.Clone(frame[:i]), bytes.Clone(frame[i:j]), bytes.Clone(frame[j:]),
			}}
			got, p, err := ReadFrame(r, 64)
			if err != nil || got != h || !bytes.Equal(p, payload) {
				t.Errorf("split at %d,%d: got (%+v, %q, %v), want (%+v, %q, nil)", i, j, got, p, err, h, payload)
			}
		}
	}
}

func TestReadFrameTruncated(t *testing.T) {
	payload := []byte("0123456789")
	frame := encode(t, Header{Type: FrameData, Step: 9}, payload)
	for _, wrap := range []struct {
		name string
		f    func(io.Reader) io.Reader
	}{
		{"plain", func(r io.Reader) io.Reader { return r }},
		{"one byte", iotest.OneByteReader},
	} {
		for k := 0; k < len(frame); k++ {
			t.Run(wrap.name+"/"+strconv.Itoa(k)+" bytes", func(t *testing.T) {
				_, p, err := ReadFrame(wrap.f(bytes.NewReader(frame[:k])), 64)
				if p != nil {
					t.Errorf("got a payload of %d bytes from a truncated frame", len(p))
				}
				switch {
				case k == 0:
					// Nothing at all: a clean end of the stream.
					if err != io.EOF {
						t.Errorf("err = %v, want io.EOF", err)
					}
				case k == HeaderSize:
					// A header announcing a payload, then nothing. This must
					// not look like a clean end of stream either.
					if !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Errorf("err = %v for a frame cut right after its header, want io.ErrUnexpectedEOF", err)
					}
				default:
					if !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Errorf("err = %v, want io.ErrUnexpectedEOF", err)
					}
				}
			})
		}
	}
}

func TestReadFrameBadMagic(t *testing.T) {
	good := rawHeader(Header{Type: FrameHello, Length: 0})
	tests := []struct {
		name  string
		input []byte
	}{
		{"zeros", make([]byte, HeaderSize)},
		{"first magic byte", func() []byte { b := bytes.Clone(good); b[0] ^= 0xff; return b }()},
		{"second magic byte", func() []byte { b := bytes.Clone(good); b[1]++; return b }()},
		{"bytes swapped", func() []byte { b := bytes.Clone(good); b[0], b[1] = b[1], b[0]; return b }()},
		{"reserved byte set", func() []byte { b := bytes.Clone(good); b[3] = 1; return b }()},
		{"HTTP request", []byte("GET / HTTP/1.0\r\nHost: example.com\r\n\r\n")},
		{"TLS client hello", append([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}, make([]byte, 40)...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, p, err := ReadFrame(bytes.NewReader(tc.input), MaxControlBytes)
			if !errors.Is(err, ErrBadMagic) {
				t.Errorf("err = %v, want ErrBadMagic", err)
			}
			if p != nil {
				t.Errorf("got a payload of %d bytes", len(p))
			}
		})
	}
	// The good header itself is accepted: the cases above fail for the
	// reason they name.
	if _, _, err := ReadFrame(bytes.NewReader(good), MaxControlBytes); err != nil {
		t.Errorf("good header: %v", err)
	}
}

func TestReadFrameTooLarge(t *testing.T) {
	tests := []struct {
		name   string
		length uint32
		max    int
		ok     bool
	}{
		{"4 GiB-1 over 64 KiB", math.MaxUint32, MaxControlBytes, false},
		{"one over", MaxControlBytes + 1, MaxControlBytes, false},
		{"exactly max", MaxControlBytes, MaxControlBytes, true},
		{"one byte, max 0", 1, 0, false},
		{"empty, max 0", 0, 0, true},
		{"negative max", 0, -1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			input := append(rawHeader(Header{Type: FrameData, Length: tc.length}), make([]byte, min(tc.length, 1<<20))...)
			h, p, err := ReadFrame(bytes.NewReader(input), tc.max)
			if tc.ok {
				if err != nil || len(p) != int(tc.length) {
					t.Fatalf("got (%d bytes, %v), want %d bytes", len(p), err, tc.length)
				}
				return
			}
			if !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("err = %v, want ErrFrameTooLarge", err)
			}
			if p != nil {
				t.Errorf("got a payload of %d bytes", len(p))
			}
			if h.Length != tc.length {
				t.Errorf("header length %d, want the announced %d", h.Length, tc.length)
			}
		})
	}
}

// TestReadFrameTooLargeAllocatesNothing checks that a header announcing
// 4 GiB-1 is refused before anything is allocated for its payload.
func TestReadFrameTooLargeAllocatesNothing(t *testing.T) {
	input := rawHeader(Header{Type: FrameHello, Length: math.MaxUint32})
	r := bytes.NewReader(input)
	read := func() {
		r.Reset(input)
		_, p, err := ReadFrame(r, MaxControlBytes)
		if p != nil || !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("got (%d bytes, %v), want ErrFrameTooLarge", len(p), err)
		}
	}
	// A handful of small allocations make up the error; none is the payload.
	if allocs := testing.AllocsPerRun(100, read); allocs >= 8 {
		t.Errorf("ReadFrame made %.1f allocations to refuse a huge frame, want fewer than 8", allocs)
	}
	const runs = 100
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		read()
	}
	runtime.ReadMemStats(&after)
	if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 1024 {
		t.Errorf("ReadFrame allocated %d bytes per run to refuse a huge frame, want at most 1 KiB", perRun)
	}
}

// FuzzReadFrame checks that ReadFrame never panics, never returns a payload
// above max, and that whatever it accepts re-encodes to the bytes it read.
func FuzzReadFrame(f *testing.F) {
	f.Add(encode(f, Header{Type: FrameData, Epoch: 1, Step: 2, Chunk: 3}, []byte("payload")), uint16(64))
	f.Add(encode(f, Header{Type: FrameHello}, nil), uint16(0))
	f.Add(encode(f, Header{Type: FrameData}, make([]byte, 100)), uint16(99))
	f.Add(rawHeader(Header{Type: FrameHello, Length: math.MaxUint32}), uint16(math.MaxUint16))
	f.Add(encode(f, Header{}, []byte("x"))[:HeaderSize+0], uint16(8))
	f.Add([]byte("GET / HTTP/1.0\r\nHost: x\r\n\r\n"), uint16(1024))
	f.Add([]byte{}, uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, max16 uint16) {
		max := int(max16)
		h, p, err := ReadFrame(bytes.NewReader(data), max)
		if err != nil {
			if p != nil {
				t.Fatalf("error %v with a payload of %d bytes", err, len(p))
			}
			return
		}
		if len(p) > max {
			t.Fatalf("payload of %d bytes, max %d", len(p), max)
		}
		if int(h.Length) != len(p) {
			t.Fatalf("header says %d bytes, payload has %d", h.Length, len(p))
		}
		var again bytes.Buffer
		if err := WriteFrame(&again, h, p); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.Bytes(), data[:HeaderSize+len(p)]) {
			t.Fatalf("re-encoding gives % x, read % x", again.Bytes(), data[:HeaderSize+len(p)])
		}
	})
}
