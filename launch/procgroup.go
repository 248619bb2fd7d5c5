package launch

// How every supervised process is started and killed: in a process group of
// its own, dying with the launcher, and killed as a whole tree. Group uses
// it for the nodes of a job; bench uses it for peer programs (mpirun, torch)
// that it runs with exec.CommandContext:
//
//	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
//	cmd.SysProcAttr = launch.ProcAttr()
//	cmd.Cancel = func() error { return launch.KillGroup(cmd.Process.Pid, syscall.SIGKILL) }

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ProcAttr puts a child in a process group of its own, so that a Ctrl-C at
// the terminal reaches only the launcher, which decides what to do, and
// kills it when the launcher dies.
func ProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// KillGroup sends sig to the process group that pid leads (see ProcAttr)
// and to every descendant of pid, found before the signal while they still
// have a parent: mpirun, for one, puts each rank in a group of its own.
func KillGroup(pid int, sig syscall.Signal) error {
	kids := descendants(pid)
	err := syscall.Kill(-pid, sig)
	for _, k := range kids {
		_ = syscall.Kill(k, sig)
	}
	return err
}

// descendants lists the processes below pid, children first.
func descendants(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, field := range strings.Fields(string(b)) {
			if k, err := strconv.Atoi(field); err == nil {
				out = append(out, k)
				out = append(out, descendants(k)...)
			}
		}
	}
	return out
}
