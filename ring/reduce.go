package ring

import (
	"unsafe"

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
		b = b[:len(d)]
		a = a[:len(d)]
		for i := range d {
			x, y := a[i], b[i]
			if y < x {
				x = y
			}
			d[i] = x
		}
	case Max:
		b = b[:len(d)]
		a = a[:len(d)]
		for i := range d {
			x, y := a[i], b[i]
			if y > x {
				x = y
			}
			d[i] = x
		}
	}
}

func reduce32(op Op, d, a, b []float32) {
	b = b[:len(d)]
	a = a[:len(d)]
	switch op {
	case Sum:
		i := 0
		for ; i+4 <= len(d); i += 4 {
			d[i] = a[i] + b[i]
			d[i+1] = a[i+1] + b[i+1]
			d[i+2] = a[i+2] + b[i+2]
			d[i+3] = a[i+3] + b[i+3]
		}
		for ; i < len(d); i++ {
			d[i] = a[i] + b[i]
		}
	case Min:
		for i := range d {
			x, y := a[i], b[i]
			if y < x {
				x = y
			}
			d[i] = x
		}
	case Max:
		for i := range d {
			x, y := a[i], b[i]
			if y > x {
				x = y
			}
			d[i] = x
		}
	}
}
