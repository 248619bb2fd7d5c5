package node

import (
	"log/slog"
)

// NoticeKey is the key of the attribute that marks a log line a person
// watching the job should see (ring changes, recoveries, evaluations,
// outputs): a launcher shows those lines, and errors, on its terminal, and
// keeps the rest in the node's log file. Lines about the whole ring carry it
// on rank 0 only, so that N nodes do not print N copies.
const NoticeKey = "notice"

// Notice marks a log line for the launcher's terminal (see NoticeKey).
var Notice = slog.Bool(NoticeKey, true)

// noticeIf is Notice when show holds, and otherwise an empty attribute,
// which slog leaves out.
func noticeIf(show bool) slog.Attr {
	if show {
		return Notice
	}
	return slog.Attr{}
}
