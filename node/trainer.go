package node

import (
	"context"
	"errors"
	"log/slog"

	"github.com/dmlrun/dmlrun/config"
)

// trainer runs the step loop of one node. (Being written: see issue 3.)
type trainer struct{}

func newTrainer(ctx context.Context, c *Comm, cfg *config.Config, log *slog.Logger, members []Member) (*trainer, error) {
	return nil, errors.New("training is not available in this build yet")
}

func (t *trainer) run(ctx context.Context) (*Result, error) { return nil, errors.New("unreachable") }
