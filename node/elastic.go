package node

import (
	"context"

	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/ring"
)

// The membership and the communicator live in package elastic; these names
// keep the trainer's code and its callers (bench) reading as before while
// the trainer moves onto elastic's Group.
type (
	Member       = elastic.Member
	Meta         = elastic.Meta
	Membership   = elastic.Membership
	MemberConfig = elastic.MemberConfig
	Comm         = elastic.Comm
	CommConfig   = elastic.CommConfig
)

var (
	NewComm            = elastic.NewComm
	StartMembership    = elastic.StartMembership
	DefaultLANConfig   = elastic.GossipLANConfig
	DefaultLocalConfig = elastic.GossipLocalConfig
	InterfaceAddr      = elastic.InterfaceAddr
	ErrConfigMismatch  = elastic.ErrConfigMismatch
)

// AllReduce is elastic.AllReduce.
func AllReduce[T ring.Float](ctx context.Context, c *Comm, op ring.Op, dst, src []T) error {
	return elastic.AllReduce(ctx, c, op, dst, src)
}
