// Package transport is dmlrun's data plane: TCP listener and dialer, an
// authenticated handshake, and a frame codec. It knows nothing about rings or
// training.
//
// A connection starts with a handshake (magic and protocol version, cluster
// name, run digest, ring epoch, both ranks, and an HMAC-SHA256
// challenge-response over the shared cluster secret, in both directions).
// Anything else is refused with a logged reason and never disturbs other
// connections. Every length a handshake message claims is checked against
// fixed maxima (nonces and MACs 32 bytes, names 256) before anything is
// allocated for it; a listener holds at most 64 unfinished handshakes, 32 per
// source address, closing the excess at once; and refusals are logged at
// most once per source address per 10 s, with a count of the others (see
// Config). After it, each message is a frame: a fixed 24-byte header
// (magic, type, epoch, step, chunk, payload length) and a raw little-endian
// payload. Control payloads (the handshake) are msgpack; gradient floats are
// never encoded, only copied.
//
// A Mesh holds the connections of one rank to the ranks it talks to and moves
// data with Exchange, which sends to one rank while receiving from another on
// a single goroutine: non-blocking readv/writev, a short bounded spin, then a
// park on the Go netpoller. That keeps the number of wakeups per message low,
// which is what limits small-message latency.
//
//	ln, err := transport.Listen("127.0.0.1:0", cfg)
//	...
//	m, err := transport.Connect(ctx, ln, cfg, epoch, rank, addrs, links)
//	err = m.Exchange(ctx, next, sendBuf, prev, recvBuf, seq, chunk)
//
// The data path is Linux-only (readv, writev and sched_yield on raw sockets).
package transport
