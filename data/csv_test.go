package data

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
)

// csvOpts are the ways a generated CSV file is written.
type csvOpts uint8

const (
	optQuoted    csvOpts = 1 << iota // quoted names (with commas, newlines, "") and numbers
	optCRLF                          // \r\n line ends
	optBOM                           // a UTF-8 byte order mark
	optBlank                         // blank lines (\n and \r\n) at the start, between rows, at the end
	optSpaces                        // spaces and tabs around values
	optNoFinalNL                     // no line end after the last line
	numOpts      = iota
)

func (o csvOpts) String() string {
	var s []string
	for i, n := range []string{"quoted", "crlf", "bom", "blank", "spaces", "nofinalnl"} {
		if o&(1<<i) != 0 {
			s = append(s, n)
		}
	}
	if len(s) == 0 {
		return "plain"
	}
	return strings.Join(s, "+")
}

// csvNumbers are the forms of numbers the generated files hold.
var csvNumbers = []string{
	"0", "1", "-7", "42", "123456", "-987654321", "1e-5", "1E+10", "-2.5e3", ".5", "-.25", "5.", "+3.25", "-0", "-0.0", "0.0",
	"00012", "0.000001", "-1.23376", "3.14159", "0.1", "0.3", "1e22", "1e23", "-1e-22", "4.9e-324", "2.2250738585072014e-308",
	"1.7976931348623157e308", "9007199254740993", "123456789012345678", "9999999999999999999", "12345678901234567890123",
	"1.2345678901234567890123e-5", "1.000000000000000000000001", "0x1p-3", "-0x1.8p+1", "0X1P4", "1e-400", "6.02214076e23",
}

// csvPlain are numbers of the record fast path: [-]digits[.digits].
var csvPlain = []string{"0", "1", "-7", "42", "123456", "-9876543", "-0", "-0.0", "0.0", "00012", "0.000001", "-1.23376",
	"3.14159", "0.1", "0.3", "5.", "1234567.12345678", "-0.000000000000001", "9.999999999999999", "12345678"}

// genCSV returns a CSV file of rows rows, written the ways of o, with the
// columns x1, x2, y, x3, x5 (y the label; with optQuoted the names hold a
// comma, a line end and an escaped quote).
func genCSV(o csvOpts, rows int, rng *rand.Rand) []byte {
	nl := "\n"
	if o&optCRLF != 0 {
		nl = "\r\n"
	}
	var b bytes.Buffer
	blank := func() {
		for range 1 + rng.IntN(3) {
			b.WriteString([]string{"\n", "\r\n"}[rng.IntN(2)])
		}
	}
	if o&optBOM != 0 {
		b.WriteString("\ufeff")
	}
	if o&optBlank != 0 {
		blank()
	}
	header := "x1,x2,y,x3,x5"
	switch {
	case o&optQuoted != 0 && o&optSpaces != 0:
		header = ` x1 ,"x,2", y ,"x` + nl + `3 ","x""5"`
	case o&optQuoted != 0:
		header = `x1,"x,2","y","x` + nl + `3","x""5"`
	case o&optSpaces != 0:
		header = " x1,x2 ,\ty, x3 ,x5"
	}
	b.WriteString(header + nl)
	pad := func() string { return []string{"", " ", "\t", "  "}[rng.IntN(4)] }
	for i := range rows {
		plain := rng.IntN(3) == 0 // a record for the numeric fast path
		for j := range 5 {
			if j > 0 {
				b.WriteByte(',')
			}
			v := csvNumbers[rng.IntN(len(csvNumbers))]
			switch {
			case plain:
				v = csvPlain[rng.IntN(len(csvPlain))]
			case o&optQuoted != 0 && rng.IntN(5) == 0: // a line end inside the quotes
				v = `"` + nl + pad() + v + nl + `"`
			case o&optQuoted != 0 && o&optSpaces != 0 && rng.IntN(2) == 0:
				v = `"` + pad() + v + pad() + `"`
			case o&optQuoted != 0 && rng.IntN(2) == 0:
				v = `"` + v + `"`
			case o&optSpaces != 0:
				v = pad() + v + pad()
			}
			b.WriteString(v)
		}
		b.WriteString(nl)
		if o&optBlank != 0 && (i == 0 || rng.IntN(4) == 0) {
			blank()
		}
	}
	if o&optBlank != 0 {
		blank()
	}
	out := b.Bytes()
	if o&optNoFinalNL != 0 {
		out = bytes.TrimSuffix(bytes.TrimSuffix(out, []byte("\n")), []byte("\r"))
	}
	return out
}

// csvEdgeCases are hand-written files for what the generator does not make.
var csvEdgeCases = []string{
	"a,b\n1,2\r",            // a lone \r at the end is dropped
	"a,b\n1,2\n\r",          // also after a line end
	"a,b\r\n1,2\r\n\r",      //
	"a,b\n\r1,2\n\r\n3,4\n", // a \r that starts a row is part of its first field
	"a,b\n1,2\r\r\n",        // "2\r"
	"a,b\n1,\"2\"\r",        //
	"a,b\n1,\"2\"",          //
	"a,b\n",                 // no rows
	"\ufeffa,b",             //
	"a,b\n1,2",              //
	"\n\n\r\n\na,b\n\n\n1,2\n\n\n\n3,4\n\n",
	"a,b\n\"1\",\"\"\"\"\n", // """" is a quote: not a number, see TestCSVErrors
	"a,\"b\r\nc\"\r\n1,\"2\r\n\"\r\n",
	"a,\"b\rc\"\n1,\"\r2\r\"\n",
	"\"a\"\"\",\"\"\"b\"\n1,2\n",
	"a\n1\n2\n", // one column: unlabeled only
	",\n1,2\n",  // empty names
	"a,b\n" + strings.Repeat("\"1\",2\n\n", 100),
}

func TestCSVMatchesEncodingCSV(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	type file struct {
		name    string
		content []byte
	}
	var files []file
	for o := range csvOpts(1 << numOpts) {
		files = append(files, file{o.String(), genCSV(o, 23, rng)})
	}
	for i, c := range csvEdgeCases {
		files = append(files, file{fmt.Sprintf("edge%d", i), []byte(c)})
	}
	dir := t.TempDir()
	for _, f := range files {
		path := writeFile(t, dir, f.name+".csv", f.content)
		for _, spec := range []Spec{{Label: "y"}, {Label: ""}, {Unlabeled: true}, {Label: "y", Float32: true}, {Unlabeled: true, Float32: true}} {
			want, err := refCSV(f.content, spec.Label, spec.Unlabeled)
			if err != nil && strings.HasPrefix(f.name, "edge") {
				continue // checked by TestCSVErrors and FuzzCSV
			}
			if err != nil {
				t.Fatalf("%s: reference: %v", f.name, err)
			}
			n := len(want.y)
			for _, v := range []int{1, 3, 7, n, n + 5} {
				spec.Paths, spec.Shards = []string{path}, v
				src := mustOpen(t, spec)
				if wantV := min(v, n); src.Sharding().Shards() != wantV {
					t.Fatalf("%s: %d shards, want %d", f.name, src.Sharding().Shards(), wantV)
				}
				checkRead(t, src, want, allShards(src))
				for range 3 {
					checkRead(t, src, want, randomShards(rng, src))
				}
			}
			// Nodes that index the file together (their cuts fall inside
			// quotes, between \r and \n, ...) read the same.
			for _, nodes := range []int{2, 3, 5} {
				spec.Shards = 1 + rng.IntN(n+1)
				srcs, err := openNodes(spec, nodes)
				if err != nil {
					t.Fatalf("%s on %d nodes: %v", f.name, nodes, err)
				}
				for _, src := range srcs {
					checkRead(t, src, want, allShards(src))
				}
			}
		}
	}
}

// TestCSVBlockBoundaries puts the hard places of the syntax (an empty \r\n
// line, a \r that starts a row, quotes, quoted line ends, records of the
// numeric fast path) across the boundaries of the blocks the reader reads:
// of a gzip stream, and of the mapped windows of a plain file.
func TestCSVBlockBoundaries(t *testing.T) {
	snippets := []string{"\r\n", "\r5,6\n", "\"5\",\"6\"\n", "\"5\r\n\",6\r\n", "\"\r\n5\",6\n", "\n\n", "\r\r5,6\n", "-5.25,6\r\n", "1234567.123456789012,1\n"}
	for _, tc := range []struct {
		at, rowLen int
		shifts     []int
		name       string
		snippets   []string
	}{
		{scanBlock, 20000, []int{-2, -1, 0, 1}, "b.csv.gz", append(snippets, "1"+strings.Repeat(" ", 3*scanBlock/2)+",2\n")},
		{mapWindow, 100000, []int{-1}, "w.csv", []string{"\r\n", "\r5,6\n", "\"5\r\n\",6\r\n", "-5.25,6\r\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, snippet := range tc.snippets {
				for _, shift := range tc.shifts {
					content := boundaryCSV(tc.at+shift, tc.rowLen, snippet)
					want, err := refCSV(content, "", false)
					if err != nil {
						t.Fatalf("snippet %.40q: reference: %v", snippet, err)
					}
					path := writeFile(t, t.TempDir(), tc.name, content)
					src := mustOpen(t, Spec{Paths: []string{path}, Shards: 1}) // one piece: the blocks start at its start
					checkRead(t, src, want, allShards(src))
				}
			}
		})
	}
	t.Run("longer than a window", func(t *testing.T) {
		content := []byte("a,b\n1" + strings.Repeat(" ", mapWindow+100) + ",2\n3,4\n")
		src := mustOpen(t, Spec{Paths: []string{writeFile(t, t.TempDir(), "l.csv", content)}, Shards: 2})
		checkRead(t, src, &refData{names: []string{"a"}, x: [][]float64{{1}, {3}}, y: []float64{2, 4}}, []int{0, 1})
	})
	// The header is read in blocks of 64 KiB: put a "" across their boundary.
	for shift := -3; shift <= 3; shift++ {
		name := strings.Repeat("n", 64<<10+shift-3) + `""` + strings.Repeat("m", 100)
		content := []byte(`a,"` + name + "\"\r\n1,2\r\n")
		want, err := refCSV(content, "", false)
		if err != nil {
			t.Fatal(err)
		}
		src := mustOpen(t, Spec{Paths: []string{writeFile(t, t.TempDir(), "h.csv", content)}, Label: strings.Replace(name, `""`, `"`, 1)})
		checkRead(t, src, want, allShards(src))
	}
}

// boundaryCSV returns a CSV file (header "a,b") whose bytes from offset
// len("a,b\n")+at on are snippet, then 1000 rows. Before it are long quoted
// rows (rowLen bytes: few to check), then short plain decimals (the fast
// path) up to a row padded with spaces.
func boundaryCSV(at, rowLen int, snippet string) []byte {
	const header = "a,b\n"
	var b bytes.Buffer
	b.WriteString(header)
	for i := 0; b.Len() < len(header)+at-100; i++ {
		if b.Len() < len(header)+at-2*rowLen {
			fmt.Fprintf(&b, "%d,\"%*d\"\n", i, rowLen-i%7, -i)
		} else {
			fmt.Fprintf(&b, "-%d.%0*d,%d\r\n", i, 1+i%15, i, i)
		}
	}
	b.WriteString("7,8" + strings.Repeat(" ", len(header)+at-b.Len()-4) + "\n") // pad up to at
	b.WriteString(snippet)
	for i := range 1000 {
		fmt.Fprintf(&b, "%d.5,%d\r\n", i, i)
	}
	return b.Bytes()
}

func TestCSVErrors(t *testing.T) {
	huge := strings.Repeat("x", 2<<20)
	for _, tc := range []struct {
		name, content, label string
		want                 string // the error after "path"; a regexp
	}{
		{"bad number", "a,b,y\n1,2,3\n4,x5,6\n", "", `^:3: column "b" \(2\): "x5" is not a number$`},
		{"bad label", "a,b,y\n1,2,3\n\n4,5,1.2.3\n", "", `^:4: column "y" \(3\): "1.2.3" is not a number$`},
		{"empty value", "a,b,y\n1,,3\n", "", `^:2: column "b" \(2\): "" is not a number$`},
		{"spaces only", "a,b,y\n1,  ,3\n", "", `^:2: column "b" \(2\): "  " is not a number$`},
		{"quoted bad", "a,b,y\n1,\"x\"\"\",3\n", "", `^:2: column "b" \(2\): "x\\"" is not a number$`},
		{"inf", "a,b,y\n1,2,3\r\n1,Inf,3\r\n", "", `^:3: column "b" \(2\): "Inf" is not a finite number$`},
		{"nan", "x3,b,y\nNaN,2,3\n", "", `^:2: column "x3" \(1\): "NaN" is not a finite number$`},
		{"overflow", "a,b,x3\n1,2,1e999\n", "", `^:2: column "x3" \(3\): "1e999" is out of the float64 range$`},
		{"hex inf", "a,b,y\n1,0x1p99999,3\n", "", `^:2: column "b" \(2\).* range$`},
		{"too few fields", "a,b,y\n1,2,3\n4,5\n", "", `^:3: 2 fields, the header has 3$`},
		{"too many fields", "a,b,y\n1,2,3,4\n", "", `^:2: 4 fields, the header has 3$`},
		{"one field", "a,b,y\n1,2,3\n\n7\n", "", `^:4: 1 fields, the header has 3$`},
		{"bare quote", "a,b,y\n1,2,3\n1,2\"x,3\n", "", `^:3: bare " in non-quoted-field$`},
		{"bare quote in header", "a,b\"\n1,2\n", "", `^:1: bare " in non-quoted-field$`},
		{"quote then text", "a,b,y\n1,\"2\"x,3\n", "", `^:2: extraneous or missing " in quoted-field$`},
		{"unterminated quote", "a,b,y\n1,2,3\n1,\"2,3\n4,5,6\n", "", `^:3: extraneous or missing " in quoted-field$`}, // where the quote opens
		{"unterminated header", "\n\"a\",\"b\n", "", `^:2: extraneous or missing " in quoted-field$`},
		{"unterminated after \"\"", "a,b,y\n1,2,3\n1,\"2\n\"\"\n3\n", "", `^:3: extraneous or missing " in quoted-field$`},
		{"label missing", "a,b,y\n1,2,3\n", "zz", `^: label column "zz" is not in the header; the columns are "a", "b", "y"$`},
		{"one column", "a\n1\n", "", `^: the header has 1 column`},
		{"empty file", "", "", `^: empty file`},
		{"blank lines only", "\n\r\n\n", "", `^: empty file`},
		{"bom only", "\ufeff", "", `^: empty file`},
		{"huge bad value", "a,b,y\n1,2,3\n1," + huge + ",3\n", "", `^:3: column "b" \(2\): "x{64}"… \(2097152 bytes\) is not a number$`},
		{"huge number", "a,b,y\n1,2,3\n1,1" + strings.Repeat("0", 2<<20) + ",3\n", "", `^:3: column "b" \(2\): "10{63}"… \(2097153 bytes\) is out of the float64 range$`},
		{"huge name", "a," + huge + ",y\n1,x,3\n", "", `^:2: column "x{64}"… \(2097152 bytes\) \(2\): "x" is not a number$`},
		{"huge name, label missing", "a," + huge + ",y\n1,2,3\n", "zz", `^: label column "zz" is not in the header; the columns are "a", "x{64}"… \(2097152 bytes\), "y"$`},
	} {
		if _, err := refCSV([]byte(tc.content), tc.label, false); err == nil {
			t.Errorf("%s: the reference reads it", tc.name)
		}
		path := writeFile(t, t.TempDir(), "file.csv", []byte(tc.content))
		for _, v := range []int{1, 3} {
			err := readAllErr(Spec{Paths: []string{path}, Label: tc.label, Shards: v})
			if err == nil {
				t.Errorf("%s: no error", tc.name)
				continue
			}
			msg, ok := strings.CutPrefix(err.Error(), path)
			if !ok || !regexp.MustCompile(tc.want).MatchString(msg) || len(msg) > 300 {
				t.Errorf("%s: error %.400q, want %s + %q", tc.name, err, path, tc.want)
			}
		}
	}
}

// TestCSVPrepareLabelsNamesLine: a bad label found after reading is named
// by its file and line, in any shard and file.
func TestCSVPrepareLabelsNamesLine(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.csv", []byte("x,y\n1,0\n\n2,1\n3,0\n"))
	b := writeFile(t, dir, "b.csv.gz", []byte("x,y\n\n\"4\n\",1\n5,0\n6,2\n7,1\n"))
	for _, v := range []int{1, 2, 3, 7} {
		src := mustOpen(t, Spec{Paths: []string{a, b}, Shards: v})
		tables, err := src.ReadShards(context.Background(), allShards(src))
		if err != nil {
			t.Fatal(err)
		}
		var errs []string
		for _, tb := range tables {
			if err := tb.PrepareLabels(TaskBinary, 0); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if want := b + ":6: label 2 is not a binary label (0/1 or -1/+1)"; len(errs) != 1 || errs[0] != want {
			t.Errorf("V=%d: errors %q, want [%q]", v, errs, want)
		}
	}
}

// TestCSVHeaderMismatch: every file must have the first file's header; the
// error names the file that differs.
func TestCSVHeaderMismatch(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.csv", []byte("x,y\n1,2\n"))
	b := writeFile(t, dir, "b.csv.gz", []byte("\ufeff x , y \n3,4\n")) // the same header, trimmed
	c := writeFile(t, dir, "c.csv", []byte("x,z\n5,6\n"))
	src := mustOpen(t, Spec{Paths: []string{a, b}})
	checkRead(t, src, &refData{names: []string{"x"}, x: [][]float64{{1}, {3}}, y: []float64{2, 4}}, []int{0, 1})
	_, err := Open(context.Background(), Spec{Paths: []string{a, b, c}})
	if err == nil || !strings.HasPrefix(err.Error(), c+": the header") || !strings.Contains(err.Error(), `"z"`) {
		t.Errorf("header mismatch: %v, want an error naming %s and its header", err, c)
	}
	// An error in a later file names that file and its line.
	d := writeFile(t, dir, "d.csv.gz", []byte("x,y\n\n7,8\n9,x\n"))
	src = mustOpen(t, Spec{Paths: []string{a, d}, Shards: 1})
	if _, err := src.ReadShards(context.Background(), []int{0}); err == nil || !strings.HasPrefix(err.Error(), d+`:4: column "y" (2): "x" is not a number`) {
		t.Errorf("error in %s: %v", d, err)
	}
}

// readAllErr opens spec and reads all its shards, and returns the error.
func readAllErr(spec Spec) error {
	src, err := Open(context.Background(), spec)
	if err != nil {
		return err
	}
	_, err = src.ReadShards(context.Background(), allShards(src))
	return err
}

// FuzzCSV reads the input as a CSV file: where the reference (refCSV) reads
// it, the fast path must read the same values; where it does not, the fast
// path must fail (not panic, not hang).
func FuzzCSV(f *testing.F) {
	for _, c := range csvEdgeCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		path := writeFile(t, t.TempDir(), "f.csv", content)
		for _, c := range []struct {
			spec  Spec
			nodes int
		}{{Spec{Shards: 1}, 1}, {Spec{Shards: 4, Unlabeled: true}, 1}, {Spec{Shards: 1 + len(content)%11, Label: "y"}, 1}, {Spec{Shards: 5}, 2}, {Spec{Shards: 3}, 3}} {
			spec := c.spec
			spec.Paths = []string{path}
			want, refErr := refCSV(content, spec.Label, spec.Unlabeled)
			timer := time.AfterFunc(20*time.Second, func() { panic(fmt.Sprintf("reading %q hangs", content)) })
			func() {
				defer timer.Stop()
				srcs, err := openNodes(spec, c.nodes)
				switch {
				case err != nil && refErr == nil:
					t.Fatalf("%+v on %d nodes: the reference reads it, the fast path: %v", spec, c.nodes, err)
				case err != nil:
					return
				}
				for _, src := range srcs {
					if refErr == nil {
						checkRead(t, src, want, allShards(src))
					} else if _, err := src.ReadShards(context.Background(), allShards(src)); err == nil {
						t.Fatalf("%+v on %d nodes: the reference fails (%v), the fast path reads it", spec, c.nodes, refErr)
					}
				}
			}()
		}
	})
}
