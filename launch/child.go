package launch

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Child is the worker's end of the line protocol: JSON lines in on standard
// input, JSON lines out on standard output.
type Child struct {
	in     *bufio.Reader
	mu     sync.Mutex
	out    io.Writer
	rounds int // exchange rounds done
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
