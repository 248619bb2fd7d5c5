package bench

// Running one peer program (mpirun, python): in a process group of its
// own, killed as a whole tree through launch's KillGroup when its context
// ends, its standard output kept for the parser and the end of its
// standard error for the error message.

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dmlrun/dmlrun/launch"
)

// runPeer runs argv in its own process group, with a deadline when timeout
// is positive, and returns its standard output. On failure the error carries
// the end of its standard error. When ctx ends, the process group and every
// descendant are killed: torch's spawned processes share the group, but
// mpirun puts each rank in a group of its own.
func runPeer(ctx context.Context, timeout time.Duration, argv []string) ([]byte, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = launch.ProcAttr()
	cmd.Cancel = func() error { return launch.KillGroup(cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second // a grandchild holding the pipes open cannot hang Wait
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s: %w", filepath.Base(argv[0]), ctx.Err())
	} else if err != nil {
		err = fmt.Errorf("%s: %w", filepath.Base(argv[0]), err)
	}
	if err != nil {
		if tail := stderr.tail(12); tail != "" {
			err = fmt.Errorf("%w; its stderr ends:\n%s", err, tail)
		}
	}
	return stdout.Bytes(), err
}

// tailBuffer keeps about the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// tail is the last n non-blank lines, indented.
func (t *tailBuffer) tail(n int) string {
	b := t.buf
	if len(b) > t.max {
		b = b[len(b)-t.max:]
	}
	var lines []string
	for l := range strings.SplitSeq(string(b), "\n") {
		if strings.TrimSpace(l) != "" && !strings.HasPrefix(strings.TrimSpace(l), "----------") {
			lines = append(lines, "    "+strings.TrimRight(l, " \r"))
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(s)
}
