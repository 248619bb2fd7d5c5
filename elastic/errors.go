package elastic

import "errors"

// ErrQuorumLost: too few nodes are left to train without risking a split
// brain (see Quorum).
var ErrQuorumLost = errors.New("quorum lost")

// ErrEvicted: the others evicted this node (it was stopped or cut off) and
// it could not come back. Like ErrQuorumLost, it is this node's loss, not a
// fault of the job.
var ErrEvicted = errors.New("evicted by the others")

// ErrMemberJoined is wrapped in the cause that Events.RingLeft reports
// when the ring is left to let in a member from outside it (at a step
// boundary, or when the ring failed while such a member waited).
var ErrMemberJoined = errors.New("a member joined: re-forming the ring")

// RingError marks a failure of the ring (a peer died, stalled or closed its
// connections), which the survivors recover from by re-forming the ring, as
// opposed to a fault of this node. It is retryable: Group.Run re-forms the
// ring and redoes the step.
type RingError struct{ Err error }

func (e RingError) Error() string { return e.Err.Error() }
func (e RingError) Unwrap() error { return e.Err }

// RingFailure wraps err as a RingError.
func RingFailure(err error) error { return RingError{err} }

// IsRingFailure reports whether err is (or wraps) a RingError.
func IsRingFailure(err error) bool {
	var r RingError
	return errors.As(err, &r)
}
