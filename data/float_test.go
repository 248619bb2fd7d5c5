package data

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// refFloat is what parseFloat must return: strconv.ParseFloat of the
// trimmed field, and an error for Inf and NaN.
func refFloat(s string) (float64, bool) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	return v, err == nil && !math.IsInf(v, 0) && !math.IsNaN(v)
}

// checkFloat checks parseFloat(s) against refFloat(s), bit for bit.
func checkFloat(t *testing.T, s string) {
	t.Helper()
	want, wantOK := refFloat(s)
	got, err := parseFloat([]byte(s))
	switch {
	case wantOK && err != nil:
		t.Errorf("parseFloat(%q): %v, want %v", s, err, want)
	case !wantOK && err == nil:
		t.Errorf("parseFloat(%q) = %v, want an error", s, got)
	case wantOK && math.Float64bits(got) != math.Float64bits(want):
		t.Errorf("parseFloat(%q) = %v (%#x), want %v (%#x)", s, got, math.Float64bits(got), want, math.Float64bits(want))
	}
}

// floatCases are inputs at the edges of the fast path and of the syntax.
var floatCases = []string{
	// not numbers
	"", " ", "\t", "+", "-", ".", "e", "e5", ".e5", "-.", "+.", "1e", "1e+", "1e-", "1e5e5", "1e+-5", "--1", "+-1", "-+1",
	"1 2", "1,2", "1..2", "1.2.3", "1-", "1e5.5", "1_000", "_1", "1__0", "0x", "0x1p", "0xg", "0b101", "0o17", "1i", "1x",
	"- 1", "1e 5", "1. 5", "\x001", "1\x00", "１", "1\u200b",
	// Inf, NaN, out of range
	"inf", "Inf", "+Inf", "-inf", "infinity", "-Infinity", "nan", "NaN", "-nan", "1e309", "-1e309", "1e400", "1e99999",
	"1.7976931348623159e308", "0x1p1024", "0x1p99999", "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497792",
	// signs and zeros
	"0", "-0", "+0", "0.0", "-0.0", "00", "000.000", ".0", "0.", "-.0e-5", "0e9999", "-0e9999", "0e99999", "-0e-99999", "0x0p0", "-0x0p+5",
	"0.000000000000000000000000000000000000000000000000000000000001", "-00000000000000000000000000000000000000.0",
	// plain decimals
	"1", "-1", "+1", "1.5", "-1.5", ".5", "+.5", "-.5", "5.", "-5.", "-1.23376", "3.14159265358979", "0.1", "0.2", "0.3",
	"3.0000000000000004", "1E5", "1e+05", "1e-05", "1.0e+22", "1e0000", "1e00001", "1e-0022", "1e-9999", "1e9999", "2.5E-3",
	"00012", "0012.5000", "-000.000125", "1000000000000000000000", "1.00000000000000000000", "0.000000000000000000001",
	// spaces: strings.TrimSpace trims Unicode space too
	" 2 ", "\t3\t", " \t-4.25\r", "\r1", "1\r", "1\n", "\n1", "\v1", "1\f", "\u00a01", "1\u00a0", "\u20281", "\u30001\u3000",
	"\r\n1\r\n", "1\r\r", " 1 \t ",
	// the limits of the fast path: 19 significant digits, 2^53, 10^±22
	"9007199254740992", "9007199254740993", "9007199254740994", "9007199254740995", "-9007199254740993",
	"9007199254740.992e3", "900719925474099.3e1", "18014398509481985", "123456789012345678", "1234567890123456789",
	"12345678901234567890", "9999999999999999999", "-9999999999999999999", "18446744073709551615", "18446744073709551616",
	"0.9999999999999999999", "9999999999999999999e-19", "1e22", "1e23", "-1e22", "1e-22", "1e-23", "123e-22", "123e-23",
	"9007199254740992e22", "9007199254740993e22", "9007199254740992e-22", "4503599627370497e-22", "1e-21", "12345.6789e-17",
	"1" + strings.Repeat("0", 22) + "e-22", "0." + strings.Repeat("0", 21) + "1e22",
	// subnormals and limits
	"4.9e-324", "5e-324", "2.4703282292062327e-324", "2.4703282292062328e-324", "1e-400", "-1e-400", "2.2250738585072011e-308",
	"2.2250738585072012e-308", "2.2250738585072014e-308", "1.7976931348623157e308", "1.7976931348623158e308", "-1.7976931348623157e308",
	"8.98846567431158e307", "6.02214076e23", "1.602176634e-19",
	// hex floats and other strconv syntax
	"0x1p-3", "0X1P-3", "-0x1.8p+1", "0x1", "0x.8p1", "0x1.fffffffffffffp1023", "0x1p-1074", "0x1p-1075", "0x_1p0", "0x1_0p0", "+0x10",
	// long mantissas
	"3.141592653589793238462643383279502884197", "0.1000000000000000055511151231257827021181583404541015625",
	"1.000000000000000000000000000000000000000000000000000000000000000000000001",
	"2.225073858507201136057409796709131975934819546351645648023426109724822222021076945516529523908135087914149158913039621106870086438694594645527657207407820621743379988141063267329253552286881372149012981122451451889849057222307285255133155755015914397476397983411801999323962548289017107081850690630666655994938275772572015763062690663332647565300009245888316433037779791869612049497390377829704905051080609940730262937128958950003583799967207254304360284078895771796150945516748243471030702609144621572289880258182545180325707018860872113128079512233426288368622321503775666622503982534335974568884423900265498198385487948292206894721689831099698365846814022854243330660339850886445804001034933970427567186443383770486037861622771738545623065874679014086723327636718751234567890123456789012345678901234567890e-308",
}

func TestParseFloatTable(t *testing.T) {
	for _, s := range floatCases {
		checkFloat(t, s)
	}
}

// randomDecimal returns a random decimal: 1-25 mantissa digits (leading and
// trailing zeros, maybe a point), maybe an exponent of -30..30, a sign,
// and spaces or tabs around it.
func randomDecimal(rng *rand.Rand) string {
	var b strings.Builder
	pick := func(s ...string) string { return s[rng.IntN(len(s))] }
	b.WriteString(pick("", "", " ", "\t", "  ", " \t"))
	b.WriteString(pick("", "", "-", "+"))
	digits := strings.Repeat("0", rng.IntN(3))
	for range 1 + rng.IntN(25) {
		digits += string(rune('0' + rng.IntN(10)))
	}
	digits += strings.Repeat("0", rng.IntN(3))
	if rng.IntN(3) > 0 {
		p := rng.IntN(len(digits) + 1)
		digits = digits[:p] + "." + digits[p:]
	}
	b.WriteString(digits)
	if rng.IntN(3) > 0 {
		b.WriteString(pick("e", "E") + pick("", "-", "+") + strconv.Itoa(rng.IntN(31)))
	}
	b.WriteString(pick("", "", " ", "\t", "\r", " \r"))
	return b.String()
}

func TestParseFloatRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	n := 200000
	if testing.Short() {
		n = 20000
	}
	for range n {
		checkFloat(t, randomDecimal(rng))
	}
	// Random float64 values written in the shortest, %e and %g forms.
	for range n / 4 {
		v := math.Float64frombits(rng.Uint64())
		for _, s := range []string{strconv.FormatFloat(v, 'g', -1, 64), strconv.FormatFloat(v, 'e', rng.IntN(20), 64), strconv.FormatFloat(v, 'f', -1, 64)} {
			checkFloat(t, s)
		}
	}
}

func TestParseFloatErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"x", `"x" is not a number`},
		{"", `"" is not a number`},
		{" 1 2 ", `" 1 2 " is not a number`},
		{"Inf", `"Inf" is not a finite number`},
		{"nan", `"nan" is not a finite number`},
		{"-1e400", `"-1e400" is out of the float64 range`},
		{strings.Repeat("7", 1000) + "x", `"` + strings.Repeat("7", 64) + `"… (1001 bytes) is not a number`},
	} {
		if _, err := parseFloat([]byte(tc.in)); err == nil || err.Error() != tc.want {
			t.Errorf("parseFloat(%.80q): error %v, want %s", tc.in, err, tc.want)
		}
	}
}

func TestParseFloatAllocs(t *testing.T) {
	for _, s := range []string{"-1.23376", " 42 ", "1e-5", "12345678901234567890123", "0x1p-3", "1e-400"} {
		b := []byte(s)
		if n := testing.AllocsPerRun(100, func() { parseFloat(b) }); n != 0 {
			t.Errorf("parseFloat(%q) allocates %v times", s, n)
		}
	}
}

func FuzzParseFloat(f *testing.F) {
	for _, s := range floatCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkFloat(t, s)
	})
}

// randomPlain returns a random field close to the plain decimals of the
// record fast path: a sign, 0-9 digits, maybe a point and 0-18 digits, and
// now and then what the fast path leaves to the general parser.
func randomPlain(rng *rand.Rand) string {
	digits := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteByte(byte('0' + rng.IntN(10)))
		}
		return b.String()
	}
	if rng.IntN(2) == 0 { // one the fast path takes
		return []string{"", "-"}[rng.IntN(2)] + digits(1+rng.IntN(7)) + []string{"", "."}[rng.IntN(2)] + digits(rng.IntN(9))
	}
	s := []string{"", "", "", "-", "+"}[rng.IntN(5)] + digits(rng.IntN(10))
	if rng.IntN(3) > 0 {
		s += "." + digits(rng.IntN(18))
	}
	switch rng.IntN(30) {
	case 0:
		s += "e" + strconv.Itoa(rng.IntN(40)-20)
	case 1:
		s = " " + s
	case 2:
		s += " "
	case 3:
		s = `"` + s + `"`
	case 4:
		s = ""
	}
	return s
}

// TestFastRecord checks the SWAR record path against strconv: where it
// takes a record, it must read every field exactly and end after the line
// end; with any bytes after the record, it must not read past the buffer.
func TestFastRecord(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	taken := 0
	for range 300000 {
		cols := 1 + rng.IntN(4)
		fields := make([]string, cols)
		for i := range fields {
			fields[i] = randomPlain(rng)
		}
		rec := strings.Join(fields, ",") + []string{"\n", "\r\n", "\r", "", " \n", ",\n"}[rng.IntN(6)]
		pad := "1234567890,1234567890123456789012345,1234567890"
		if rng.IntN(4) == 0 {
			pad = pad[:rng.IntN(36)] // little room: it must give up, not read past b
		}
		b := []byte(rec + pad)
		b = b[:len(b):len(b)]
		vals := make([]float64, cols+rng.IntN(2)) // now and then one field too many
		next, ok := fastRecord(b, vals)
		if !ok {
			continue
		}
		taken++
		if next != len(rec) || len(vals) != cols {
			t.Fatalf("fastRecord(%q) with %d fields: next %d, want %d (%d fields)", b, len(vals), next, len(rec), cols)
		}
		for i, f := range fields {
			want, wantOK := refFloat(f)
			if !wantOK || math.Float64bits(vals[i]) != math.Float64bits(want) {
				t.Fatalf("fastRecord(%q): field %d = %v (%#x), strconv: %v (%#x) ok %v", b, i, vals[i], math.Float64bits(vals[i]), want, math.Float64bits(want), wantOK)
			}
		}
	}
	if taken < 5000 {
		t.Errorf("the fast path took only %d records", taken)
	}
	// It takes the common records.
	for _, rec := range []string{"-1.23376,2\n", "0,0.5,-7\r\n", "1234567.12345678,-0\n", "00012,0.000000000000001\n", "5.,3\n"} {
		vals := make([]float64, strings.Count(rec, ",")+1)
		if _, ok := fastRecord([]byte(rec+strings.Repeat("\n", 32)), vals); !ok {
			t.Errorf("fastRecord(%q) gives up", rec)
		}
	}
}

// TestCSVFloat32RangeAcrossFiles: a float32 table whose shard spans plain
// files, parsed side by side, names the first value beyond the float32
// range, every time (and, under -race, without a data race).
func TestCSVFloat32RangeAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	for k := range 8 {
		writeFile(t, dir, fmt.Sprintf("part-%d.csv", k), []byte("a,y\n"+strings.Repeat("1e300,1\n2,1\n", 200)))
	}
	for range 5 {
		src := mustOpen(t, Spec{Paths: []string{dir}, Shards: 1, Float32: true})
		_, err := src.ReadShards(context.Background(), []int{0})
		if want := filepath.Join(dir, "part-0.csv") + `:2: feature "a": a value beyond ±3.4e38 does not fit data.dtype float32`; err == nil || err.Error() != want {
			t.Fatalf("error %v, want %s", err, want)
		}
	}
}

func BenchmarkParseFloat(b *testing.B) {
	in := []byte("-1.23376")
	for b.Loop() {
		parseFloat(in)
	}
}
