package ring

import (
	"context"
	"errors"
)

// Peer moves bytes between this rank and the others. The transport implements
// it over TCP; tests implement it over in-memory pipes.
type Peer interface {
	// Exchange sends send to rank to and, at the same time, receives exactly
	// len(recv) bytes from rank from. A negative rank means no send (to) or no
	// receive (from). to and from may be the same rank.
	//
	// seq and chunk tag the message: the sender attaches them and the receiver
	// must check that what arrives carries the same tag and exactly len(recv)
	// bytes, failing otherwise. Exchange must return by ctx's deadline, and its
	// error should name the peer it failed on.
	Exchange(ctx context.Context, to int, send []byte, from int, recv []byte, seq uint64, chunk uint32) error
}

// Op is a reduction operator.
type Op uint8

// The reduction operators.
const (
	Sum Op = iota
	Min
	Max
)

func (o Op) String() string {
	switch o {
	case Sum:
		return "sum"
	case Min:
		return "min"
	case Max:
		return "max"
	}
	return "op?"
}

// ParseOp turns "sum", "min" or "max" into an Op.
func ParseOp(s string) (Op, error) {
	for _, o := range []Op{Sum, Min, Max} {
		if o.String() == s {
			return o, nil
		}
	}
	return 0, errors.New("unknown reduction op " + `"` + s + `"` + " (want sum, min or max)")
}

// Float is the element type of the vectors that collectives move.
type Float interface {
	~float32 | ~float64
}
