package data

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unsafe"
)

// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseFloat parses a field as a finite float64, exactly as
// strconv.ParseFloat(strings.TrimSpace(s), 64) would, and rejects Inf and
// NaN. Plain decimals ([+-]digits[.digits][e[+-]digits], at most 19
// significant digits, a power of ten within ±22) take a fast path that is
// exact for the same reason strconv's own is (Clinger: the mantissa and the
// power of ten are exact in float64, so one rounding happens); everything
// else goes to strconv. It does not allocate unless it fails.
func parseFloat(b []byte) (float64, error) {
	if v, ok := parseDecimal(b); ok {
		return v, nil
	}
	return parseSlow(b)
}

// parseDecimal is the fast path of parseFloat; ok is false when it does not
// apply (which is not an error: the slow path decides).
func parseDecimal(b []byte) (v float64, ok bool) {
	i, n := 0, len(b)
	for i < n && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	for n > i && (b[n-1] == ' ' || b[n-1] == '\t' || b[n-1] == '\r') {
		n--
	}
	if i == n {
		return 0, false
	}
	neg := false
	if b[i] == '-' || b[i] == '+' {
		neg = b[i] == '-'
		i++
	}
	var mant uint64
	digits, sig, exp := 0, 0, 0
	for ; i < n && b[i]-'0' < 10; i++ {
		digits++
		if sig > 0 || b[i] != '0' {
			sig++
			mant = mant*10 + uint64(b[i]-'0')
		}
	}
	if i < n && b[i] == '.' {
		for i++; i < n && b[i]-'0' < 10; i++ {
			digits++
			if sig > 0 || b[i] != '0' {
				sig++
				mant = mant*10 + uint64(b[i]-'0')
			}
			exp--
		}
	}
	if digits == 0 || sig > 19 {
		return 0, false
	}
	if i < n && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if i < n && (b[i] == '-' || b[i] == '+') {
			eneg = b[i] == '-'
			i++
		}
		e, ed := 0, 0
		for ; i < n && b[i]-'0' < 10 && ed < 5; i++ {
			e = e*10 + int(b[i]-'0')
			ed++
		}
		if ed == 0 || ed == 5 {
			return 0, false
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	if i != n {
		return 0, false
	}
	if mant == 0 {
		v = 0
	} else {
		if mant > 1<<53 || exp < -22 || exp > 22 {
			return 0, false
		}
		v = float64(mant)
		if exp < 0 {
			v /= pow10[-exp]
		} else {
			v *= pow10[exp]
		}
	}
	if neg {
		v = -v
	}
	return v, true
}

// parseSlow is strconv's answer for what the fast path leaves, with the
// message that names the field.
func parseSlow(b []byte) (float64, error) {
	t := bytes.TrimSpace(b)
	v, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(t), len(t)), 64) // strconv copies what it keeps
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%s is out of the float64 range", quoteField(b))
	}
	if err != nil {
		return 0, fmt.Errorf("%s is not a number", quoteField(b))
	}
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%s is not a finite number", quoteField(b))
	}
	return v, nil
}

// maxQuoted bounds how much of a bad field an error message quotes.
const maxQuoted = 64

// quoteField quotes a field for an error message, at most maxQuoted bytes of
// it: "abc", or "abcd…" (1048576 bytes).
func quoteField(b []byte) string {
	if len(b) <= maxQuoted {
		return strconv.Quote(string(b))
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(string(b[:maxQuoted])), len(b))
}
