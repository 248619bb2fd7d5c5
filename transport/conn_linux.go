package transport

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Conn is one authenticated data-plane connection to a peer rank. After the
// handshake its socket is taken away from Go's netpoller (which would
// otherwise wake an idle thread for every arriving packet) and driven with
// raw non-blocking system calls by one Exchange at a time.
type Conn struct {
	fd    int // valid until Close
	peer  int
	epoch uint32
	addr  string

	mu     sync.Mutex // guards fd against shutdown racing with Close
	closed bool

	sess *session // nil: frames unprotected (ProtectNone)

	// Bytes of frames (headers, payloads, tags) written to and read from
	// the socket since the handshake; read at any time by Traffic.
	sent, received atomic.Uint64

	// The current exchange's outgoing frame: header, payload (or its
	// ciphertext and tag), and the MAC tag if any.
	whdr         [HeaderSize]byte
	wparts       [3][]byte
	wdone, wsize int
	wiov         [3]syscall.Iovec
	wscratch     []byte // Encrypt: the sealed payload

	// The current exchange's incoming frame: header, payload (or its
	// ciphertext and tag), and the MAC tag if any.
	rhdr         [HeaderSize]byte
	rbuf         []byte // where the floats go
	rparts       [3][]byte
	rdone, rsize int
	rchecked     bool
	riov         [3]syscall.Iovec
	rtag         [tagSize]byte
	rscratch     []byte // Encrypt: the sealed payload as received
}

// newConn takes over nc's socket: it duplicates the descriptor (which stays
// non-blocking: the flag belongs to the shared open file) and closes nc, which
// removes the socket from the netpoller.
func newConn(nc net.Conn, peer int, epoch uint32, sess *session) (*Conn, error) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil, fmt.Errorf("data plane: %T is not a TCP connection", nc)
	}
	_ = tc.SetNoDelay(true) // Go's default too: small frames must not wait for Nagle
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, fmt.Errorf("data plane: dup socket: %w", dupErr)
	}
	c := &Conn{fd: fd, peer: peer, epoch: epoch, addr: tc.RemoteAddr().String(), sess: sess}
	tc.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Peer is the rank at the other end.
func (c *Conn) Peer() int { return c.peer }

// Epoch is the ring epoch the connection was made for.
func (c *Conn) Epoch() uint32 { return c.epoch }

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() string { return c.addr }

// Close closes the connection. It must not run while an Exchange uses it (the
// Mesh sees to that).
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return unix.Close(c.fd)
}

func (c *Conn) String() string { return fmt.Sprintf("rank %d (%s)", c.peer, c.addr) }

// shutdown ends both directions without closing the descriptor: the peer
// reads EOF at once, and an Exchange waiting here wakes up.
func (c *Conn) shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		_ = unix.Shutdown(c.fd, unix.SHUT_RDWR)
	}
}

// peerClosed reports whether the peer has hung up (without waiting).
func (c *Conn) peerClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return true
	}
	fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLRDHUP}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
}

// Traffic returns the bytes of frames (headers, payloads and tags, not the
// handshake) sent and received on this connection so far. It is safe to call
// from any goroutine, also during an Exchange and after Close.
func (c *Conn) Traffic() (sent, received uint64) {
	return c.sent.Load(), c.received.Load()
}

// Protection is what guards this connection's frames (None, MAC or Encrypt).
func (c *Conn) Protection() Protection {
	if c.sess == nil {
		return ProtectNone
	}
	return c.sess.level
}

// startSend prepares the outgoing frame: with a session, the payload is
// tagged or sealed here, before its first byte leaves.
func (c *Conn) startSend(h Header, payload []byte) {
	h.Length = uint32(len(payload))
	h.put(c.whdr[:])
	c.wparts = [3][]byte{c.whdr[:], payload, nil}
	if c.sess != nil {
		sealed := c.sess.sealFrame(c.whdr[:], payload, &c.wscratch)
		if c.sess.level == ProtectMAC {
			c.wparts[2] = sealed
		} else {
			c.wparts[1] = sealed
		}
	}
	c.wdone, c.wsize = 0, HeaderSize+len(c.wparts[1])+len(c.wparts[2])
}

// startRecv prepares for an incoming frame whose payload is len(buf) bytes.
func (c *Conn) startRecv(buf []byte) {
	c.rbuf = buf
	c.rparts = [3][]byte{c.rhdr[:], buf, nil}
	if c.sess != nil {
		if c.sess.level == ProtectMAC {
			c.rparts[2] = c.rtag[:]
		} else {
			if cap(c.rscratch) < len(buf)+tagSize {
				c.rscratch = make([]byte, len(buf)+tagSize)
			}
			c.rparts[1] = c.rscratch[:len(buf)+tagSize]
		}
	}
	c.rdone, c.rsize, c.rchecked = 0, HeaderSize+len(c.rparts[1])+len(c.rparts[2]), false
}

// finishRecv verifies (and in Encrypt mode decrypts) the complete incoming
// frame.
func (c *Conn) finishRecv() error {
	if c.sess == nil {
		return nil
	}
	wire := c.rparts[2] // MAC: the tag
	if c.sess.level == ProtectEncrypt {
		wire = c.rparts[1]
	}
	return c.sess.openFrame(c.rhdr[:], c.rbuf, wire)
}

func setIov(v *syscall.Iovec, b []byte) {
	v.Base = &b[0]
	v.SetLen(len(b))
}

// iovecs points iov at what is left of parts after done bytes and returns
// how many it set.
func iovecs(iov *[3]syscall.Iovec, parts *[3][]byte, done int) uintptr {
	n := 0
	for _, p := range parts {
		if done >= len(p) {
			done -= len(p)
			continue
		}
		setIov(&iov[n], p[done:])
		done = 0
		n++
	}
	return uintptr(n)
}

// writeSome makes one non-blocking writev of what is left of the outgoing
// frame. It returns syscall.EAGAIN when the socket buffer is full.
func (c *Conn) writeSome() (int, error) {
	cnt := iovecs(&c.wiov, &c.wparts, c.wdone)
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, uintptr(c.fd), uintptr(unsafe.Pointer(&c.wiov[0])), cnt)
		switch e {
		case 0:
			c.wdone += int(n)
			c.sent.Add(uint64(n))
			return int(n), nil
		case syscall.EINTR:
			continue
		}
		return 0, e
	}
}

// readSome makes one non-blocking readv into what is left of the incoming
// frame. It returns syscall.EAGAIN when nothing has arrived and io.EOF when
// the peer closed the connection.
func (c *Conn) readSome() (int, error) {
	cnt := iovecs(&c.riov, &c.rparts, c.rdone)
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READV, uintptr(c.fd), uintptr(unsafe.Pointer(&c.riov[0])), cnt)
		switch {
		case e == syscall.EINTR:
			continue
		case e != 0:
			return 0, e
		case n == 0:
			return 0, io.EOF
		}
		c.rdone += int(n)
		c.received.Add(uint64(n))
		return int(n), nil
	}
}

// sched_yield lets the other processes of an oversubscribed host run while
// this one spins.
func yield() { _, _, _ = syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
