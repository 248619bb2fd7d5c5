package node

import (
	"os"
	"strings"
)

// faultEnv names the environment variable through which a test kills one
// node at a named point of the run: DMLRUN_FAULT=POINT:FILE makes the first
// process that reaches POINT (the one that creates FILE) exit with status
// 3 there, as a crash would. Nothing else reads it.
const faultEnv = "DMLRUN_FAULT"

// faultPoint is a place where a test may kill this node (see faultEnv).
func faultPoint(point string) {
	p, file, ok := strings.Cut(os.Getenv(faultEnv), ":")
	if !ok || p != point || file == "" {
		return
	}
	if f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
		f.Close()
		os.Exit(3)
	}
}
