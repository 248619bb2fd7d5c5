package train

import "github.com/dmlrun/dmlrun/data"

// Table is the rows a model trains on (package data reads them).
type Table = data.Table

// Task names, as in package data.
const (
	TaskRegression = data.TaskRegression
	TaskBinary     = data.TaskBinary
	TaskMulticlass = data.TaskMulticlass
)

// streamMLP keeps the random stream of MLP initialization apart from the
// data's streams (package data holds those).
const streamMLP = 0x5ca1ab1e_0000_0003

// mix is the splitmix64 finalizer: it spreads a seed over all 64 bits.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
