package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A link of a mesh is up only once both of its ends use it in their
// current ring attempt. The listener authenticates and keeps a connection
// whether or not its rank is connecting into that ring at the moment (it
// may still be in an earlier attempt of the same epoch, training, or about
// to give up), so a dialer that counted its link as up at the handshake
// could run a collective with a rank that never takes part, and an
// acceptor could take up a connection whose dialer has moved on. Connect
// therefore confirms every link: the acceptor, having claimed the
// connection, sends a claim frame; the dialer, still waiting in that
// attempt, answers with one. A dialer that gave up has closed the
// connection, and the acceptor waits for its next one; a rank that is not
// connecting leaves its peers waiting until their connect deadline, not
// their first collective's.

// errNotClaim: the peer sent something other than a claim.
var errNotClaim = errors.New("expected a claim frame")

// claim is the accepting side: it tells the dialer that this rank took the
// connection, and waits for the dialer to confirm that it still uses it.
func (c *Conn) claim(ctx context.Context) error {
	if err := c.sendClaim(ctx); err != nil {
		return err
	}
	return c.recvClaim(ctx)
}

// awaitClaim is the dialing side: it waits for the acceptor's claim and
// confirms it.
func (c *Conn) awaitClaim(ctx context.Context) error {
	if err := c.recvClaim(ctx); err != nil {
		return err
	}
	return c.sendClaim(ctx)
}

func (c *Conn) sendClaim(ctx context.Context) error {
	c.startSend(Header{Type: FrameClaim, Epoch: c.epoch}, nil)
	for {
		if _, err := c.writeSome(); err != nil && err != syscall.EAGAIN {
			return err
		}
		if c.wdone == c.wsize {
			c.sent.Store(0) // Traffic counts the collectives' frames only
			return nil
		}
		if err := c.await(ctx, unix.POLLOUT); err != nil {
			return err
		}
	}
}

func (c *Conn) recvClaim(ctx context.Context) error {
	c.startRecv(nil)
	for {
		if _, err := c.readSome(); err != nil && err != syscall.EAGAIN {
			return err
		}
		if !c.rchecked && c.rdone >= HeaderSize {
			c.rchecked = true
			h, err := parseHeader(c.rhdr[:])
			if err != nil {
				return err
			}
			if h.Type != FrameClaim || h.Epoch != c.epoch || h.Length != 0 {
				return fmt.Errorf("%w: got frame (type %d, epoch %d, %d bytes), want a claim of epoch %d", errNotClaim, h.Type, h.Epoch, h.Length, c.epoch)
			}
		}
		if c.rdone == c.rsize {
			if err := c.finishRecv(); err != nil {
				return err
			}
			c.received.Store(0)
			return nil
		}
		if err := c.await(ctx, unix.POLLIN); err != nil {
			return err
		}
	}
}

// await waits until the socket is ready for events (or has hung up), or ctx
// ends.
func (c *Conn) await(ctx context.Context, events int16) error {
	fds := []unix.PollFd{{Fd: int32(c.fd), Events: events | unix.POLLRDHUP}}
	return pollUntil(ctx, fds)
}

// pollUntil polls fds until one has an event (its Revents set), or ctx
// ends; it wakes at least every pollInterval to look at ctx.
func pollUntil(ctx context.Context, fds []unix.PollFd) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		wait := pollInterval
		if d, ok := ctx.Deadline(); ok {
			wait = max(time.Millisecond, min(wait, time.Until(d)))
		}
		for i := range fds {
			fds[i].Revents = 0
		}
		n, err := unix.Poll(fds, int(wait/time.Millisecond))
		if err != nil && err != unix.EINTR {
			return err
		}
		if n > 0 {
			return nil
		}
	}
}

// signal makes the eventfd efd readable (and so wakes its pollers).
func signal(efd int) {
	var one [8]byte
	one[0] = 1 // eventfd counters are host-endian; 1 is nonzero either way
	_, _ = unix.Write(efd, one[:])
}

// claimGone reports whether err means that the other end dropped the
// connection before the claim completed (the next one may do).
func claimGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
