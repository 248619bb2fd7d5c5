package ring

import (
	"unsafe"

	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/floats"
)

// elemSize reports the byte size of T (4 for float32, 8 for float64).
func elemSize[T Float]() int {
	var zero T
	return int(unsafe.Sizeof(zero))
}

// asBytes views a float slice as its raw bytes (native byte order, which is
// little-endian on every platform dmlrun supports).
func asBytes[T Float](v []T) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*elemSize[T]())
}

func f32s(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

func f64s(b []byte) []float64 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float64)(unsafe.Pointer(&b[0])), len(b)/8)
}

// reduce sets dst[i] = a[i] op b[i] over raw vectors of elements of size es.
// dst may alias a or b. Operands are combined in the order given, so two ranks
// that call reduce with the same (a, b) get the same bits.
func reduce(op Op, es int, dst, a, b []byte) {
	if es == 8 {
		reduce64(op, f64s(dst), f64s(a), f64s(b))
	} else {
		reduce32(op, f32s(dst), f32s(a), f32s(b))
	}
}

func reduce64(op Op, d, a, b []float64) {
	switch op {
	case Sum:
		floats.AddTo(d, a, b) // assembly kernel
	case Min:
		minInto(d, a, b)
	case Max:
		maxInto(d, a, b)
	}
}

func reduce32(op Op, d, a, b []float32) {
	switch op {
	case Sum:
		// Float addition is commutative bit for bit, so d = a + b may be
		// computed as d += (whichever operand d is not).
		switch {
		case len(d) == 0:
			return
		case &d[0] == &a[0]:
		case &d[0] == &b[0]:
			b = a
		default:
			copy(d, a)
		}
		axpy32(d, b[:len(d)])
	case Min:
		minInto(d, a, b)
	case Max:
		maxInto(d, a, b)
	}
}

// minInto sets d[i] = min(a[i], b[i]), keeping a[i] on ties.
func minInto[T Float](d, a, b []T) {
	a, b = a[:len(d)], b[:len(d)]
	for i := range d {
		x, y := a[i], b[i]
		if y < x {
			x = y
		}
		d[i] = x
	}
}

// maxInto sets d[i] = max(a[i], b[i]), keeping a[i] on ties.
func maxInto[T Float](d, a, b []T) {
	a, b = a[:len(d)], b[:len(d)]
	for i := range d {
		x, y := a[i], b[i]
		if y > x {
			x = y
		}
		d[i] = x
	}
}

// accumulate sets dst[i] = dst[i] op src[i]: the ring's reduce-scatter, where
// any operand order will do (the allgather then hands every rank the same
// bytes).
func accumulate(op Op, es int, dst, src []byte) {
	if op == Sum && es == 4 && len(dst) > 0 {
		axpy32(f32s(dst), f32s(src))
		return
	}
	reduce(op, es, dst, dst, src)
}

// axpy32 sets d += s with gonum's assembly kernel.
func axpy32(d, s []float32) {
	blas32.Axpy(1, blas32.Vector{N: len(d), Inc: 1, Data: s}, blas32.Vector{N: len(d), Inc: 1, Data: d})
}
