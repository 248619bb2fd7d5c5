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
