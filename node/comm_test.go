package node

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/dmlrun/dmlrun/elastic/elastictest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The communicators of node's tests come from elastictest.
var (
	testConfig     = elastictest.Config
	startComms     = elastictest.Comms
	startCommsWith = elastictest.CommsWith
	parallel       = elastictest.Parallel
)
