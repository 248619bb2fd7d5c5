package node

import (
	"context"
	"time"
)

// stepContext is a context whose deadline moves every step without
// allocating (context.WithTimeout allocates a timer and a context each
// call). Done reports only the parent's cancellation; the deadline is
// reported by Deadline and Err, which is what the data plane polls.
type stepContext struct {
	context.Context
	deadline time.Time
}

func (c *stepContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *stepContext) Err() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// reset moves the deadline to d from now.
func (c *stepContext) reset(d time.Duration) *stepContext {
	c.deadline = time.Now().Add(d)
	return c
}
