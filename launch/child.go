package launch

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"unicode/utf8"
)

// Child is the worker's end of the line protocol: JSON lines in on standard
// input, JSON lines out on standard output.
type Child struct {
	in     *bufio.Reader
	mu     sync.Mutex
	out    io.Writer
	rounds int    // exchange rounds done
	line   []byte // SendOutput's line, reused
}

// NewChild wraps the worker's standard input and output.
func NewChild(stdin io.Reader, stdout io.Writer) *Child {
	return &Child{in: bufio.NewReaderSize(stdin, 64<<10), out: stdout}
}

// Recv reads the next line into v. io.EOF means the launcher is gone.
func (c *Child) Recv(v any) error {
	line, err := c.in.ReadBytes('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		return err
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("launcher sent a bad line: %w", err)
	}
	return nil
}

// Send writes v as one line; safe for concurrent use.
func (c *Child) Send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err = c.out.Write(append(b, '\n'))
	return err
}

// WatchEOF reads and discards the rest of standard input and calls gone when
// it closes: the launcher exited or stopped the job. Run it in a goroutine.
func (c *Child) WatchEOF(gone func()) {
	_, _ = io.Copy(io.Discard, c.in)
	gone()
}

// Rendezvous is the worker's half of the rendezvous: it reports addr, where
// the others reach this process (a node's gossip address, a benchmark rank's
// data-plane address), and returns every process's address in launch order
// once all of them reported (JoinList). From then on it watches standard
// input in a goroutine and calls gone when it closes (see WatchEOF).
func (c *Child) Rendezvous(addr string, gone func()) ([]string, error) {
	if err := c.Send(NodeReport{Gossip: addr}); err != nil {
		return nil, err
	}
	var jl JoinList
	if err := c.Recv(&jl); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the launcher stopped the job before it started")
		}
		return nil, fmt.Errorf("reading the join list: %w", err)
	}
	go c.WatchEOF(gone)
	return jl.Join, nil
}

// SendPart sends v as a part of the result, as soon as it is known (a
// benchmark's row per size): the launcher hands it to Job.OnPart.
func (c *Child) SendPart(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.Send(NodeReport{Part: b})
}

// ErrLauncherGone is the error of a Child call that needed an answer after
// the launcher closed the node's standard input (it stopped the job, or
// exited).
var ErrLauncherGone = errors.New("the launcher stopped the job")

// Exchange sums v over every node of the job, in place: each node sends its
// vector, the launcher adds them up and sends every node the sum (exact for
// integers up to 2^53). It is a Spec.Exchange of package data for jobs that
// have no ring of their own. Every node must make the same calls, in the
// same order, with vectors of the same length; no other Recv may run
// meanwhile. It returns ErrLauncherGone when the launcher stopped the job.
func (c *Child) Exchange(ctx context.Context, v []float64) error {
	round := c.rounds
	c.rounds++
	if err := c.Send(NodeReport{Exchange: &Exchange{Round: round, V: v}}); err != nil {
		return err
	}
	type answer struct {
		sum ExchangeSum
		err error
	}
	got := make(chan answer, 1)
	go func() {
		var a answer
		a.err = c.Recv(&a.sum)
		got <- a
	}()
	select {
	case <-ctx.Done():
		return ctx.Err() // the reader stays blocked until standard input closes
	case a := <-got:
		switch {
		case errors.Is(a.err, io.EOF):
			return ErrLauncherGone
		case a.err != nil:
			return a.err
		case a.sum.Round != round || len(a.sum.Sum) != len(v):
			return fmt.Errorf("exchange round %d: the launcher answered round %d with %d values for %d", round, a.sum.Round, len(a.sum.Sum), len(v))
		}
		copy(v, a.sum.Sum)
		return nil
	}
}

// SendOutput sends b (whole lines) as one Output piece, as Send of
// NodeReport{Output: string(b)} would, but without reflection or a copy of
// b to a string: a node that streams its results sends many of them.
func (c *Child) SendOutput(b []byte) error {
	if !utf8.Valid(b) {
		return c.Send(NodeReport{Output: string(b)}) // json.Marshal's replacement characters
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.line = append(c.line[:0], outputPrefix...)
	c.line = appendJSONString(c.line, b)
	c.line = append(c.line, outputSuffix...)
	c.line = append(c.line, '\n')
	_, err := c.out.Write(c.line)
	return err
}

// The shape of a line that carries nothing but an Output piece.
const (
	outputPrefix = `{"output":"`
	outputSuffix = `"}`
)

// appendJSONString appends the body of a JSON string holding b (valid
// UTF-8) to dst.
func appendJSONString(dst, b []byte) []byte {
	start := 0
	for i, c := range b {
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, b[start:i]...)
		switch c {
		case '\n':
			dst = append(dst, '\\', 'n')
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\t':
			dst = append(dst, '\\', 't')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, fmt.Sprintf(`\u%04x`, c)...)
		}
		start = i + 1
	}
	return append(dst, b[start:]...)
}

// outputPiece returns the Output of a line that holds only that (the shape
// SendOutput writes), decoded, and false for any other line (which the
// caller then decodes as JSON). It spares the launcher a reflective decode
// of every piece a node streams.
func outputPiece(line []byte) ([]byte, bool) {
	if len(line) < len(outputPrefix)+len(outputSuffix) || string(line[:len(outputPrefix)]) != outputPrefix ||
		string(line[len(line)-len(outputSuffix):]) != outputSuffix {
		return nil, false
	}
	body := line[len(outputPrefix) : len(line)-len(outputSuffix)]
	out := make([]byte, 0, len(body))
	start := 0
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '"' || c < 0x20:
			return nil, false // not a lone JSON string: another shape
		case c != '\\':
			continue
		}
		if i+1 >= len(body) {
			return nil, false
		}
		out = append(out, body[start:i]...)
		switch e := body[i+1]; e {
		case 'n':
			out = append(out, '\n')
		case '"', '\\', '/':
			out = append(out, e)
		case 't':
			out = append(out, '\t')
		case 'r':
			out = append(out, '\r')
		default: // \u, \b, \f: the general decoder
			return nil, false
		}
		i++
		start = i + 1
	}
	out = append(out, body[start:]...)
	if !utf8.Valid(out) {
		return nil, false
	}
	return out, true
}
