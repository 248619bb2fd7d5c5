package transport

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// maxTrackedSources bounds the source addresses a refusalLog keeps state
// for; past it, idle entries are dropped, and if none is idle the newcomers
// share one entry.
const maxTrackedSources = 4096

// refusalLog writes the lines of refused connections, at most one per source
// (IP address) and level per interval. The refusals in between are counted;
// at the end of the interval one summary line reports how many there were
// and the last one's reason. Close writes the pending summaries at once.
type refusalLog struct {
	log      *slog.Logger
	interval time.Duration // 0: every refusal gets its line

	mu      sync.Mutex
	closed  bool
	sources map[refusalKey]*sourceLog
}

type refusalKey struct {
	ip    string
	level slog.Level
}

type sourceLog struct {
	last       time.Time // when this source's last line was written
	suppressed int       // refusals since then, not written
	lastRemote string
	lastReason string
	timer      *time.Timer // the pending summary, while suppressed > 0
}

func newRefusalLog(log *slog.Logger, interval time.Duration) *refusalLog {
	return &refusalLog{log: log, interval: interval, sources: map[refusalKey]*sourceLog{}}
}

// refused logs (or counts) one refused connection from remote, whose IP
// address is ip.
func (r *refusalLog) refused(level slog.Level, ip, remote string, reason error) {
	if r.interval <= 0 {
		r.log.Log(context.Background(), level, "data plane: refused connection", "remote", remote, "reason", reason)
		return
	}
	if !r.log.Enabled(context.Background(), level) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	k := refusalKey{ip, level}
	s := r.sources[k]
	if s == nil {
		if len(r.sources) >= maxTrackedSources {
			r.prune(now)
		}
		if len(r.sources) >= maxTrackedSources {
			k.ip = "(other)"
			s = r.sources[k]
		}
		if s == nil {
			s = &sourceLog{}
			r.sources[k] = s
		}
	}
	if !r.closed && !s.last.IsZero() && now.Sub(s.last) < r.interval {
		s.suppressed++
		s.lastRemote, s.lastReason = remote, reason.Error()
		if s.timer == nil {
			s.timer = time.AfterFunc(s.last.Add(r.interval).Sub(now), func() { r.flush(k) })
		}
		return
	}
	s.last = now
	r.log.Log(context.Background(), level, "data plane: refused connection", "remote", remote, "reason", reason)
}

// flush writes the summary of source k's suppressed refusals, if any.
func (r *refusalLog) flush(k refusalKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.sources[k]; s != nil {
		r.summarize(k, s, time.Now())
	}
}

// summarize needs r.mu.
func (r *refusalLog) summarize(k refusalKey, s *sourceLog, now time.Time) {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if s.suppressed == 0 {
		return
	}
	r.log.Log(context.Background(), k.level, "data plane: refused connections (rate-limited)",
		"remote_ip", k.ip, "suppressed", s.suppressed, "interval", r.interval,
		"last_remote", s.lastRemote, "last_reason", s.lastReason)
	s.suppressed = 0
	s.last = now
}

// prune drops the sources that have nothing pending and wrote their last
// line more than an interval ago. It needs r.mu.
func (r *refusalLog) prune(now time.Time) {
	for k, s := range r.sources {
		if s.suppressed == 0 && now.Sub(s.last) >= r.interval {
			delete(r.sources, k)
		}
	}
}

// close writes every pending summary now; later refusals are logged one line
// each (there are few: the listener is closed).
func (r *refusalLog) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	now := time.Now()
	for k, s := range r.sources {
		r.summarize(k, s, now)
	}
}
