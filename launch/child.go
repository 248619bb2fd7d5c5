package launch

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Child is the worker's end of the line protocol: JSON lines in on standard
// input, JSON lines out on standard output.
type Child struct {
	in  *bufio.Reader
	mu  sync.Mutex
	out io.Writer
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
