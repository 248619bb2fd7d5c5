package testbed

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Sweep removes what beds of dead processes left behind: namespaces named
// Prefix+"<pid>-..." whose pid no longer runs (after killing the processes
// inside), processes (a bed's sshds) whose command line names such a bed's
// directory, and those directories. Beds of live processes, and names that
// do not carry a pid, are left alone. Start calls it.
func Sweep() error {
	deadline := time.Now().Add(closeTimeout)
	var errs []error

	ents, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, e := range ents {
		if ownerGone(e.Name()) {
			errs = append(errs, removeNS(e.Name(), deadline))
		}
	}

	// An sshd whose namespace was deleted under it (a crash in the middle
	// of Close) is found by its -f argument, a path in a bed's directory.
	tmpPrefix := filepath.Join(os.TempDir(), Prefix)
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for _, arg := range bytes.Split(cmdline, []byte{0}) {
			if rest, ok := strings.CutPrefix(string(arg), tmpPrefix); ok && ownerGone(Prefix+rest) {
				_ = unix.Kill(pid, unix.SIGKILL)
				break
			}
		}
	}

	dirs, err := filepath.Glob(tmpPrefix + "*")
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, d := range dirs {
		if ownerGone(filepath.Base(d)) {
			errs = append(errs, os.RemoveAll(d))
		}
	}
	return errors.Join(errs...)
}

// ownerGone reports whether name is Prefix+"<pid>-..." and that pid does
// not run any more.
func ownerGone(name string) bool {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return false
	}
	pidStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return false
	}
	return unix.Kill(pid, 0) == unix.ESRCH
}
