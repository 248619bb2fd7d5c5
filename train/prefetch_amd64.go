package train

import "unsafe"

// prefetch asks the CPU to start loading the n bytes at addr into cache,
// without waiting for them.
//
//go:noescape
func prefetch(addr unsafe.Pointer, n int)
