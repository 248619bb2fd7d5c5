package timeline

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const (
	header  = `{"traceEvents":[`
	trailer = "\n],\"displayTimeUnit\":\"ms\"}\n"
	// bufSize is the event buffer, allocated once. An event that leaves
	// less than flushRoom free flushes it at once, so that appending never
	// grows the buffer unless one event is larger than flushRoom.
	bufSize   = 256 << 10
	flushRoom = 16 << 10
)

// Writer streams the events of one process to a part file. It is not safe
// for concurrent use. A write error is kept (Err) and later events are
// dropped: a timeline must never stop the program it watches.
type Writer struct {
	f      *os.File
	path   string
	pid    int
	buf    []byte
	off    int64 // where the next events go: the trailer's offset
	events int   // events appended
	err    error
}

// Create makes a new part file at path, or, if path exists (a process
// restarted with the same arguments), at path with -2, -3, ... before its
// extension; Path says which. Its directory is created if needed. The new
// file is already a valid, empty trace.
func Create(path string) (*Writer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("timeline part %s: %w", path, err)
	}
	ext := filepath.Ext(path)
	base := strings.TrimSuffix(path, ext)
	for i := 1; i <= 1000; i++ {
		p := path
		if i > 1 {
			p = base + "-" + strconv.Itoa(i) + ext
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("timeline part %s: %w", p, err)
		}
		w := &Writer{f: f, path: p, buf: make([]byte, 0, bufSize), off: int64(len(header))}
		if _, err := f.WriteAt([]byte(header+trailer), 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("timeline part %s: %w", p, err)
		}
		return w, nil
	}
	return nil, fmt.Errorf("timeline part %s: 1000 parts of that name exist already", path)
}

// Path is the part file's path.
func (w *Writer) Path() string { return w.path }

// SetPID sets the process id of the events appended from now on.
func (w *Writer) SetPID(pid int) { w.pid = pid }

// Events is the number of events appended so far.
func (w *Writer) Events() int { return w.events }

// Buffered is the number of bytes appended since the last flush.
func (w *Writer) Buffered() int { return len(w.buf) }

// Err is the first write error, nil if none.
func (w *Writer) Err() error { return w.err }

// Event is an event being appended: add its arguments, then call Done.
// Arguments come after the fixed fields, in the order added.
type Event struct {
	w    *Writer
	args bool
}

// Complete begins a complete event ("X"): a span of dur nanoseconds from ts
// on lane (thread) tid.
func (w *Writer) Complete(tid int, name string, ts, dur int64) Event {
	w.begin('X', tid, name)
	w.buf = appendMicros(append(w.buf, `,"ts":`...), ts)
	w.buf = appendMicros(append(w.buf, `,"dur":`...), dur)
	return Event{w: w}
}

// Instant begins an instant event ("i", thread scope) at ts on lane tid.
func (w *Writer) Instant(tid int, name string, ts int64) Event {
	w.begin('i', tid, name)
	w.buf = append(w.buf, `,"s":"t"`...)
	w.buf = appendMicros(append(w.buf, `,"ts":`...), ts)
	return Event{w: w}
}

// Meta begins a metadata event ("M") such as process_name or thread_name,
// whose value goes in its arguments: w.Meta(3, "thread_name").Str("name",
// "data").Done().
func (w *Writer) Meta(tid int, name string) Event {
	w.begin('M', tid, name)
	return Event{w: w}
}

func (w *Writer) begin(ph byte, tid int, name string) {
	if w.events == 0 {
		w.buf = append(w.buf, '\n')
	} else {
		w.buf = append(w.buf, ",\n"...)
	}
	w.events++
	w.buf = append(w.buf, `{"ph":"`...)
	w.buf = append(w.buf, ph)
	w.buf = strconv.AppendInt(append(w.buf, `","pid":`...), int64(w.pid), 10)
	w.buf = strconv.AppendInt(append(w.buf, `,"tid":`...), int64(tid), 10)
	w.buf = appendString(append(w.buf, `,"name":`...), name)
}

func (e Event) key(k string) Event {
	if e.args {
		e.w.buf = append(e.w.buf, ',')
	} else {
		e.w.buf = append(e.w.buf, `,"args":{`...)
		e.args = true
	}
	e.w.buf = append(appendString(e.w.buf, k), ':')
	return e
}

// Int adds an integer argument.
func (e Event) Int(k string, v int64) Event {
	e = e.key(k)
	e.w.buf = strconv.AppendInt(e.w.buf, v, 10)
	return e
}

// Float adds a number argument; NaN and infinities, which JSON cannot
// hold, become null.
func (e Event) Float(k string, v float64) Event {
	e = e.key(k)
	if v-v != 0 {
		e.w.buf = append(e.w.buf, "null"...)
		return e
	}
	e.w.buf = strconv.AppendFloat(e.w.buf, v, 'g', -1, 64)
	return e
}

// Str adds a string argument (cut to 1 KiB).
func (e Event) Str(k, v string) Event {
	e = e.key(k)
	e.w.buf = appendString(e.w.buf, v)
	return e
}

// Done ends the event. It flushes when the buffer is nearly full, which
// does not happen in a step of a few events between flushes.
func (e Event) Done() {
	if e.args {
		e.w.buf = append(e.w.buf, '}')
	}
	e.w.buf = append(e.w.buf, '}')
	if cap(e.w.buf)-len(e.w.buf) < flushRoom {
		_ = e.w.Flush()
	}
}

// Flush writes the events appended since the last flush, and the trailer
// after them, in one write at the old trailer's place: the file is a
// valid trace before and after.
func (w *Writer) Flush() error {
	if len(w.buf) == 0 || w.f == nil {
		return w.err
	}
	if w.err == nil {
		n := len(w.buf)
		w.buf = append(w.buf, trailer...)
		if _, err := w.f.WriteAt(w.buf, w.off); err != nil {
			w.err = fmt.Errorf("timeline part %s: %w", w.path, err)
		} else {
			w.off += int64(n)
		}
	}
	w.buf = w.buf[:0]
	return w.err
}

// Close flushes and closes the part file.
func (w *Writer) Close() error {
	if w.f == nil {
		return w.err
	}
	err := w.Flush()
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("timeline part %s: %w", w.path, cerr)
	}
	w.f = nil
	return err
}
