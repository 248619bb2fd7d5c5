// Package jobprogress is a live view of one training node's run (its
// phase, step, epoch, loss, samples and place in the ring) that the node
// writes with atomic stores, allocation-free in its step loop, and that a
// reporter reads as a Snapshot at any time: `dmlrun` sends it to the
// launcher, which draws the job's progress bars.
package jobprogress
