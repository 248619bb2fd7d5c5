package train

// prefetch asks the CPU to start loading the n float64s at addr into cache,
// without waiting for them.
//
//go:noescape
func prefetch(addr *float64, n int)
