package ring

// Span names what a Tracer is told about: a whole collective, or one phase
// of one.
type Span uint8

// The spans. A ring AllReduce is SpanAllReduce holding SpanReduceScatter
// then SpanAllGather; a small one (recursive doubling) is SpanAllReduce
// holding SpanRecursiveDoubling. ReduceScatter, AllGather, Broadcast and
// Barrier called on their own are one span each.
const (
	SpanAllReduce Span = iota + 1
	SpanReduceScatter
	SpanAllGather
	SpanRecursiveDoubling
	SpanBroadcast
	SpanBarrier
)

func (s Span) String() string {
	switch s {
	case SpanAllReduce:
		return "allreduce"
	case SpanReduceScatter:
		return "reduce-scatter"
	case SpanAllGather:
		return "allgather"
	case SpanRecursiveDoubling:
		return "recursive doubling"
	case SpanBroadcast:
		return "broadcast"
	case SpanBarrier:
		return "barrier"
	}
	return "span?"
}

// Tracer, set in Options, is told where collectives and their phases begin
// and end, for a timeline. A Comm calls it from the goroutine that runs the
// collective: Begin(s), then, for a phase, its own Begin and End nested
// inside, then End(s) with the collective's sequence number (the same on
// every rank for the same collective of one Comm) and its error, nil on
// success. Every Begin is matched by an End, also when the collective
// fails. A collective with nothing to exchange (one rank, or an empty
// vector) is not reported.
//
// Calls sit on the hot path: they must return quickly and should not
// allocate. A nil Tracer costs one comparison per call site.
//
//	type lanes struct{ start [4]time.Time; depth int }
//	func (l *lanes) Begin(s ring.Span) { l.start[l.depth] = time.Now(); l.depth++ }
//	func (l *lanes) End(s ring.Span, seq uint64, err error) {
//		l.depth--
//		record(s.String(), l.start[l.depth], time.Now(), seq, err)
//	}
//	c := ring.New(peer, rank, size, ring.Options{Tracer: &lanes{}})
type Tracer interface {
	Begin(s Span)
	End(s Span, seq uint64, err error)
}

func (c *Comm) begin(s Span) {
	if c.opts.Tracer != nil {
		c.opts.Tracer.Begin(s)
	}
}

// end reports the end of s and returns err, so that a collective can end
// with `return c.end(s, err)`.
func (c *Comm) end(s Span, err error) error {
	if c.opts.Tracer != nil {
		c.opts.Tracer.End(s, c.seq, err)
	}
	return err
}
