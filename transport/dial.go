package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Dial connects to the rank to at addr on behalf of rank from in ring epoch
// epoch, and runs the client side of the handshake. It retries with backoff
// (10 ms doubling to 500 ms) while the peer is not up yet, until ctx ends; it
// then reports the last real cause. A refusal or failed authentication is not
// retried.
func Dial(ctx context.Context, addr string, cfg Config, epoch uint32, from, to int) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	backoff := 10 * time.Millisecond
	var last error
	for attempt := 1; ; attempt++ {
		c, err := dialOnce(ctx, addr, &cfg, epoch, from, to)
		if err == nil {
			return c, nil
		}
		if ctx.Err() == nil || last == nil { // keep the real cause, not the cancellation
			last = err
		}
		if errors.Is(err, ErrRefused) || errors.Is(err, ErrAuth) {
			return nil, fmt.Errorf("dial rank %d at %s: %w", to, addr, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("dial rank %d at %s: gave up after %d attempts (%w); last error: %w", to, addr, attempt, ctx.Err(), last)
		case <-t.C:
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

func dialOnce(ctx context.Context, addr string, cfg *Config, epoch uint32, from, to int) (*Conn, error) {
	var d net.Dialer
	hsCtx, cancel := context.WithTimeout(ctx, cfg.handshakeTimeout())
	defer cancel()
	nc, err := d.DialContext(hsCtx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline, _ := hsCtx.Deadline()
	stop := context.AfterFunc(hsCtx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	sess, err := clientHandshake(nc, cfg, Hello{Epoch: epoch, From: from, To: to}, deadline)
	if !stop() && err == nil {
		err = hsCtx.Err()
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	c, err := newConn(nc, to, epoch, sess)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}
