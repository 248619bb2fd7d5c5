package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dmlrun/dmlrun/launch"
	"github.com/dmlrun/dmlrun/timeline"
)

// jobTimeline is the launcher's side of `-timeline FILE`: every node
// streams its events to its own part, FILE.parts/rank-N.json (N: its launch
// index, which is its first rank); when the job ends, however it ends (done,
// failed, a node killed, the launcher interrupted), the launcher merges the
// parts into FILE and removes them. A part is valid JSON at every moment
// but the instant of a write, so a node killed outright leaves its events
// up to its last flush (every 10 ms). Parts of nodes on other hosts are
// read at the same path (a shared file system), or else fetched over ssh.
type jobTimeline struct {
	file, dir string
	steps     int
	slots     []launch.Slot
	remote    launch.Remote
}

// newJobTimeline prepares FILE.parts for the slots' nodes, removing the
// parts of an earlier run; nil when file is "".
func newJobTimeline(file string, steps int, slots []launch.Slot, remote launch.Remote) (*jobTimeline, error) {
	if file == "" {
		return nil, nil
	}
	abs, err := filepath.Abs(file) // the nodes, local or not, write at this path
	if err != nil {
		return nil, err
	}
	j := &jobTimeline{file: abs, dir: abs + ".parts", steps: steps, slots: slots, remote: remote}
	if err := os.MkdirAll(j.dir, 0o755); err != nil {
		return nil, fmt.Errorf("-timeline %s: %w", file, err)
	}
	old, _ := j.parts()
	for _, p := range old {
		if err := os.Remove(p); err != nil {
			return nil, fmt.Errorf("-timeline %s: removing the part of an earlier run: %w", file, err)
		}
	}
	return j, nil
}

// part is the part file of the node of slot i.
func (j *jobTimeline) part(i int) string {
	return filepath.Join(j.dir, "rank-"+strconv.Itoa(i)+".json")
}

// parts lists the part files now in FILE.parts (a restarted node's beside
// the first: rank-1.json, rank-1-2.json).
func (j *jobTimeline) parts() ([]string, error) {
	return filepath.Glob(filepath.Join(j.dir, "rank-*.json"))
}

// nodeArgs are the flags that make the node of slot i record its part.
func (j *jobTimeline) nodeArgs(i int) []string {
	if j == nil {
		return nil
	}
	return []string{"-timeline-part", j.part(i), "-timeline-pid", strconv.Itoa(i), "-timeline-steps", strconv.Itoa(j.steps)}
}

// finish merges the parts into FILE and says so on log. It is called when
// the job has ended, whatever its outcome; only a FILE that cannot be
// written is an error (a node without events is reported on log).
func (j *jobTimeline) finish(ctx context.Context, log io.Writer) error {
	if j == nil {
		return nil
	}
	j.fetchRemote(context.WithoutCancel(ctx), log)
	parts, err := j.parts()
	if err != nil {
		return err
	}
	st, err := timeline.Merge(j.file, parts)
	for _, p := range st.Problems {
		fmt.Fprintf(log, "dmlrun: timeline: %v\n", p)
	}
	if err != nil {
		return fmt.Errorf("-timeline: %w (the parts are kept in %s)", err, j.dir)
	}
	for i, s := range j.slots {
		if !slices.Contains(st.PIDs, i) {
			fmt.Fprintf(log, "dmlrun: timeline: no events from node %s (it stopped before its first ring)\n", s.Label())
		}
	}
	for _, p := range parts {
		os.Remove(p)
	}
	os.Remove(j.dir) // only if empty: nothing else is ours to remove
	torn := ""
	if st.Torn > 0 {
		torn = fmt.Sprintf(", %d torn lines of killed nodes dropped", st.Torn)
	}
	fmt.Fprintf(log, "dmlrun: timeline written to %s: %d events from %d nodes%s; open it in https://ui.perfetto.dev or chrome://tracing\n",
		j.file, st.Events, len(st.PIDs), torn)
	return nil
}

// fetchRemote copies over ssh the parts of nodes on other hosts that are
// not visible here (no shared file system), for every slot whose first
// part is missing; best effort, 30 s at most.
func (j *jobTimeline) fetchRemote(ctx context.Context, log io.Writer) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, s := range j.slots {
		if s.Host.IsLocal() {
			continue
		}
		if _, err := os.Stat(j.part(i)); err == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := j.fetch(ctx, s.Host, j.part(i)); err != nil {
				fmt.Fprintf(log, "dmlrun: timeline: no part from node %s: %v\n", s.Label(), err)
			}
		}()
	}
	wg.Wait()
}

// fetch copies path from host h to the same path here, through the job's
// ssh client.
func (j *jobTimeline) fetch(ctx context.Context, h launch.Host, path string) error {
	ssh := j.remote.SSH
	if len(ssh) == 0 {
		ssh = []string{"ssh"}
	}
	quoted := "'" + strings.ReplaceAll(path, "'", `'\''`) + "'"
	argv := append(slices.Clone(ssh), "-o", "BatchMode=yes", "-T", h.Name, "cat "+quoted)
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("ssh %s cat %s: %w: %s", h.Name, path, err, strings.TrimSpace(stderr.String()))
	}
	if len(b) == 0 {
		return errors.New(path + " on " + h.Name + " is empty")
	}
	return os.WriteFile(path, b, 0o644)
}
