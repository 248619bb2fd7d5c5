package elastic

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
)

// Gossip streams arrive before anything authenticates them (memberlist
// decrypts a push-pull only once it has read all of it), so a stranger can
// make a node buffer whatever it sends. cappedTransport bounds that: at most
// maxGossipStreams incoming streams at once (the excess is closed at once),
// each read up to maxGossipStreamBytes. A dmlrun cluster's whole state (names,
// addresses and at most 512 bytes of metadata per member) fits many times
// over.
const (
	maxGossipStreams     = 8
	maxGossipStreamBytes = 4 << 20
)

var errGossipStreamTooLarge = errors.New("gossip stream longer than the 4 MiB a cluster's state needs")

// cappedTransport is memberlist's NetTransport with incoming streams capped.
type cappedTransport struct {
	*memberlist.NetTransport
	streams chan net.Conn
	slots   chan struct{}
	done    chan struct{} // closed by Shutdown: stop handing streams to memberlist
	shut    chan struct{} // closed once the network transport is shut down
	stop    sync.Once
	refused atomic.Int64 // streams closed because maxGossipStreams were open
}

func newCappedTransport(nt *memberlist.NetTransport) *cappedTransport {
	t := &cappedTransport{NetTransport: nt, streams: make(chan net.Conn),
		slots: make(chan struct{}, maxGossipStreams), done: make(chan struct{}), shut: make(chan struct{})}
	go t.forward()
	return t
}

// StreamCh hands memberlist the streams that got a slot.
func (t *cappedTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *cappedTransport) forward() {
	in := t.NetTransport.StreamCh()
	for {
		select {
		case c := <-in:
			select {
			case t.slots <- struct{}{}:
			default:
				t.refused.Add(1)
				c.Close() // at once: it holds a file descriptor and memory
				continue
			}
			lc := &limitedConn{Conn: c, left: maxGossipStreamBytes, release: func() { <-t.slots }}
			select {
			case t.streams <- lc:
			case <-t.done:
				lc.Close()
				t.drain(in)
				return
			}
		case <-t.done:
			t.drain(in)
			return
		}
	}
}

// drain closes the streams that still arrive while the network transport
// shuts down: its listener waits to hand each one over, and its Shutdown
// waits for the listener.
func (t *cappedTransport) drain(in <-chan net.Conn) {
	for {
		select {
		case c := <-in:
			c.Close()
		case <-t.shut:
			return
		}
	}
}

// Shutdown stops forwarding, then the network transport.
func (t *cappedTransport) Shutdown() error {
	var err error
	t.stop.Do(func() {
		close(t.done)
		err = t.NetTransport.Shutdown()
		close(t.shut)
	})
	return err
}

// limitedConn is an incoming stream that may be read only so far, and that
// gives its slot back when closed.
type limitedConn struct {
	net.Conn
	left    int
	release func()
	once    sync.Once
}

func (c *limitedConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errGossipStreamTooLarge
	}
	n, err := c.Conn.Read(p[:min(len(p), c.left)])
	c.left -= n
	return n, err
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
