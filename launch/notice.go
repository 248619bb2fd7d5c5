package launch

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"time"
)

// LogLine is a log record that a node sends to its launcher to be shown on
// the terminal: a line marked for a person (see NoticeHandler) or an error.
type LogLine struct {
	Time  time.Time `json:"time"`
	Level string    `json:"level"`
	Msg   string    `json:"msg"`
	Attrs []KV      `json:"attrs,omitempty"`
}

// KV is one attribute of a LogLine, its value already formatted.
type KV struct {
	K string `json:"k"`
	V string `json:"v"`
}

// NoticeHandler passes every record to next (the node's full log) and sends
// those a person should see to the launcher as well: records that carry the
// boolean attribute key set to true, and every record at level Error or
// above.
//
//	h := launch.NewNoticeHandler(slog.NewTextHandler(os.Stderr, nil), "notice",
//		func(l launch.LogLine) { _ = child.Send(launch.NodeReport{Log: &l}) })
//	log := slog.New(h)
//	log.Info("ring formed", "size", 4, "notice", true) // on the launcher's terminal too
type NoticeHandler struct {
	next  slog.Handler
	key   string
	send  func(LogLine)
	attrs []slog.Attr // from WithAttrs, keys already prefixed with their groups
	group string      // "" or "a.b."
}

// NewNoticeHandler returns a NoticeHandler (see its doc).
func NewNoticeHandler(next slog.Handler, key string, send func(LogLine)) *NoticeHandler {
	return &NoticeHandler{next: next, key: key, send: send}
}

// Enabled is next's.
func (h *NoticeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

// Handle writes r to next, and sends it on when it is a notice or an error.
func (h *NoticeHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.next.Handle(ctx, r)
	notice := false
	attrs := slices.Clone(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == h.key && a.Value.Kind() == slog.KindBool {
			notice = notice || a.Value.Bool()
			return true
		}
		attrs = append(attrs, slog.Attr{Key: h.group + a.Key, Value: a.Value})
		return true
	})
	if !notice && r.Level < slog.LevelError {
		return err
	}
	line := LogLine{Time: r.Time, Level: r.Level.String(), Msg: r.Message}
	for _, a := range attrs {
		if a.Key == h.key || a.Equal(slog.Attr{}) {
			continue
		}
		line.Attrs = append(line.Attrs, KV{K: a.Key, V: short(a.Value.Resolve())})
	}
	h.send(line)
	return err
}

// WithAttrs returns a handler whose records carry attrs too.
func (h *NoticeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	c.attrs = slices.Clip(h.attrs)
	for _, a := range attrs {
		c.attrs = append(c.attrs, slog.Attr{Key: h.group + a.Key, Value: a.Value})
	}
	return &c
}

// WithGroup returns a handler that qualifies later keys with name.
func (h *NoticeHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.next = h.next.WithGroup(name)
	c.group = h.group + name + "."
	return &c
}

// short formats v for a terminal: floats to 6 significant digits.
func short(v slog.Value) string {
	if v.Kind() == slog.KindFloat64 {
		return strconv.FormatFloat(v.Float64(), 'g', 6, 64)
	}
	return v.String()
}
