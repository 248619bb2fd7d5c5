package data

import (
	"fmt"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// mapWindow is how much of a file is mapped at a time: reading a mapped file
// costs no copy, and unmapping each window keeps the file's pages out of the
// process's resident set.
const mapWindow = 16 << 20

// mapRange maps bytes [off, end) of f read-only and returns them with the
// function that unmaps them.
func mapRange(f *os.File, off, end int64) ([]byte, func(), error) {
	if end <= off {
		return nil, func() {}, nil
	}
	page := int64(os.Getpagesize())
	start := off - off%page
	b, err := unix.Mmap(int(f.Fd()), start, int(end-start), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: mapping bytes %d..%d: %w", f.Name(), off, end, err)
	}
	unix.Madvise(b, unix.MADV_SEQUENTIAL)
	return b[off-start:], func() { unix.Munmap(b) }, nil
}

// catchFault turns a fault on a mapped file (it shrank while mapped) into
// an error instead of a crash. Call it deferred, after
// debug.SetPanicOnFault(true), in the goroutine that reads the mapping.
func catchFault(path string, err *error) {
	debug.SetPanicOnFault(false)
	if r := recover(); r != nil {
		if _, ok := r.(interface{ Addr() uintptr }); ok {
			*err = fmt.Errorf("%s: the file shrank while it was read: %v", path, r)
			return
		}
		panic(r)
	}
}

// forEachWindow calls fn with consecutive mapped windows of bytes
// [off, end) of path, each at most mapWindow long, and their offsets.
func forEachWindow(path string, off, end int64, fn func(b []byte, base int64) error) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	debug.SetPanicOnFault(true)
	defer catchFault(path, &err)
	for off < end {
		e := min(end, off+mapWindow)
		b, unmap, err := mapRange(f, off, e)
		if err != nil {
			return err
		}
		err = fn(b, off)
		unmap()
		if err != nil {
			return err
		}
		off = e
	}
	return nil
}
