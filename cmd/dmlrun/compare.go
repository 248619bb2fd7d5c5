package main

import (
	"context"
	"fmt"
	"io"
)

// compareCmd runs `dmlrun bench compare` (dmlrun against Open MPI and gloo).
func compareCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return fmt.Errorf("%w: bench compare is not built yet", errUsage)
}
