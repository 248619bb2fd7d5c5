package launch

import (
	"fmt"
	"io"
)

// Worker is a launched program's end of the protocol when its hello carries
// a payload of type P (NodeHello.Extra, e.g. a benchmark's options; the
// launcher puts a P there). It is a Child that has read its hello:
//
//	w, err := launch.Attach[sweepHello](os.Stdin, os.Stdout)
//	if err != nil {
//		return err
//	}
//	ln := listen(w.Payload.Bind)
//	ctx, cancel := context.WithCancel(ctx)
//	addrs, err := w.Rendezvous(advertised(w.Hello.Host, ln), cancel) // everyone's, in launch order
//	for _, row := range measure(ctx, addrs) {
//		w.SendPart(row) // to Job.OnPart, as it comes
//	}
//	return w.Send(launch.NodeReport{Rank: w.Payload.Rank, Extra: done}) // the result, last
//
// A training node has no payload and creates its Child before it reads the
// hello (its log notices go through the Child from the start), so it uses
// NewChild, Recv and Rendezvous directly.
type Worker[P any] struct {
	*Child
	Hello   NodeHello // its Extra is nil: the payload is in Payload
	Payload P
}

// Attach reads the launcher's hello from stdin, with its payload.
func Attach[P any](stdin io.Reader, stdout io.Writer) (*Worker[P], error) {
	c := NewChild(stdin, stdout)
	var h struct {
		NodeHello
		Extra P `json:"extra"` // shadows NodeHello.Extra
	}
	if err := c.Recv(&h); err != nil {
		return nil, fmt.Errorf("reading the launcher's hello: %w", err)
	}
	return &Worker[P]{Child: c, Hello: h.NodeHello, Payload: h.Extra}, nil
}
