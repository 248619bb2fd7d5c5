package data

import (
	"encoding/binary"
	"math/bits"
)

// The fast path for the common CSV record: unquoted plain decimals
// ([-]digits[.digits], at most 7 digits before and 15 after the point, 19
// in all)
// separated by commas. It reads 8 bytes at a time (SWAR: the digits of a
// run are found and converted with a few multiplications, without a loop
// over the bytes). Anything else, or a record that ends too near the end
// of the buffer, makes it give up on the record, and the general parser
// (csvRecords, which follows encoding/csv) reads it instead. Tests check
// both against encoding/csv.

// fastRecord parses the record at b[0:] into vals (exactly len(vals)
// fields) and returns the offset after its line end, or ok false.
func fastRecord(b []byte, vals []float64) (next int, ok bool) {
	p := 0
	for i := range vals {
		if p+27 > len(b) { // room for whole 8-byte loads after each part
			return 0, false
		}
		neg := b[p] == '-'
		if neg {
			p++
		}
		w := binary.LittleEndian.Uint64(b[p:])
		k := digitRun(w)
		if k == 0 || k == 8 {
			return 0, false
		}
		var mant uint64
		if k == 1 { // the common case: one digit before the point
			mant = w&0xFF - '0'
		} else {
			mant = uint64(eightDigits(w, k))
		}
		p += k
		c := byte(w >> (8 * k)) // the byte after the digits, without a load
		scale := 0
		if c == '.' {
			p++
			w = binary.LittleEndian.Uint64(b[p:])
			f := digitRun(w)
			if f > 0 {
				mant = mant*uint64(pow10int[f]) + uint64(eightDigits(w, f))
				p += f
				scale = f
			}
			if f == 8 { // a long fraction, such as 0.00123456
				w = binary.LittleEndian.Uint64(b[p:])
				f = digitRun(w)
				if f == 8 || k+scale+f > 19 {
					return 0, false
				}
				if f > 0 {
					mant = mant*uint64(pow10int[f]) + uint64(eightDigits(w, f))
					p += f
					scale += f
				}
			}
			if mant > 1<<53 {
				return 0, false
			}
			c = byte(w >> (8 * f))
		}
		v := float64(mant) / pow10[scale] // exact operands: one rounding, as strconv's
		if neg {
			v = -v
		}
		vals[i] = v
		switch {
		case c == ',' && i+1 < len(vals):
			p++
		case c == '\n' && i+1 == len(vals):
			return p + 1, true
		case c == '\r' && b[p+1] == '\n' && i+1 == len(vals):
			return p + 2, true
		default:
			return 0, false
		}
	}
	return 0, false
}

var pow10int = [...]uint32{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000}

// digitRun returns how many of the 8 bytes of w (the first in the low byte)
// are ASCII digits before the first byte that is not.
func digitRun(w uint64) int {
	const hi = 0xF0F0F0F0F0F0F0F0
	nd := (w&hi ^ 0x3030303030303030) | ((w+0x0606060606060606)&hi ^ 0x3030303030303030)
	return bits.TrailingZeros64(nd) / 8
}

// eightDigits returns the value of the first k (1..8) digit bytes of w.
func eightDigits(w uint64, k int) uint32 {
	w -= 0x3030303030303030
	w <<= 8 * (8 - k) // the k digits to the top, zeros (leading digits 0) below
	w = w*10 + w>>8
	w = ((w&0x000000FF000000FF)*(100+1000000<<32) + (w>>16&0x000000FF000000FF)*(1+10000<<32)) >> 32
	return uint32(w)
}
