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
	if FaultHit(point) {
		os.Exit(3)
	}
}

// FaultHit reports whether a test asked this process to fail at point
// (DMLRUN_FAULT=POINT:FILE, see faultEnv): true for the first process that
// reaches it, which creates FILE. The caller fails as it sees fit, e.g.
// dmlrun predict's workers at "predict-torn/RANK" (killed in the middle of
// a line to the launcher) and "predict-hold/RANK" (stopped until killed).
func FaultHit(point string) bool {
	p, file, ok := strings.Cut(os.Getenv(faultEnv), ":")
	if !ok || p != point || file == "" {
		return false
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return false
	}
	f.Close()
	return true
}
