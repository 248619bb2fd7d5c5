package data

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// refLIBSVM reads LIBSVM text the dumb way: lines (bufio.Scanner), text
// after '#' dropped, strings.Fields; the label, then index:value pairs
// (index >= 1); features 1..the largest index, missing ones 0.
func refLIBSVM(content []byte) (*refData, error) {
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(nil, 1<<30)
	type row struct {
		y  float64
		kv map[int]float64
	}
	var rows []row
	features := 0
	num := func(s string) (float64, error) {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return 0, fmt.Errorf("%q is not a finite number", s)
		}
		return v, nil
	}
	for line := 1; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		y, err := num(f[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", line, err)
		}
		r := row{y, map[int]float64{}}
		for _, tok := range f[1:] {
			is, vs, ok := strings.Cut(tok, ":")
			i, err := strconv.Atoi(is)
			if !ok || err != nil || i < 1 || strings.HasPrefix(is, "+") || strings.HasPrefix(is, "-") {
				return nil, fmt.Errorf("line %d: %q", line, tok)
			}
			if r.kv[i], err = num(vs); err != nil {
				return nil, fmt.Errorf("line %d: %v", line, err)
			}
			features = max(features, i)
		}
		rows = append(rows, r)
	}
	if len(rows) > 0 && features == 0 {
		return nil, errors.New("no features")
	}
	d := &refData{}
	for j := range features {
		d.names = append(d.names, "f"+strconv.Itoa(j+1))
	}
	for _, r := range rows {
		x := make([]float64, features)
		for i, v := range r.kv {
			x[i-1] = v
		}
		d.x, d.y = append(d.x, x), append(d.y, r.y)
	}
	return d, nil
}

// genLIBSVM returns LIBSVM text of rows rows, with comments, blank and
// space-only lines, CRLF line ends (crlf) and no line end at the end (noNL).
func genLIBSVM(rng *rand.Rand, rows int, crlf, noNL bool) []byte {
	nl := "\n"
	if crlf {
		nl = "\r\n"
	}
	var b bytes.Buffer
	b.WriteString("# a comment first" + nl + nl)
	sp := func() string { return []string{" ", "  ", "\t", " \t"}[rng.IntN(4)] }
	for i := range rows {
		if rng.IntN(3) == 0 {
			b.WriteString(sp())
		}
		b.WriteString(csvNumbers[rng.IntN(len(csvNumbers))])
		for j := 1; j <= 12; j++ {
			if rng.IntN(3) == 0 {
				fmt.Fprintf(&b, "%s%0*d:%s", sp(), 1+rng.IntN(2), j, csvNumbers[rng.IntN(len(csvNumbers))])
			}
		}
		switch rng.IntN(8) {
		case 0:
			b.WriteString(sp() + "# trailing comment 1:5")
		case 1:
			b.WriteString("#no space")
		case 2:
			b.WriteString(sp())
		}
		b.WriteString(nl)
		switch rng.IntN(8) {
		case 0:
			b.WriteString(nl)
		case 1:
			b.WriteString("# comment line 9:9" + nl)
		case 2:
			b.WriteString(sp() + nl)
		case 3:
			b.WriteString(sp() + "# indented comment" + nl + "\r\n\n")
		}
		if i == rows/2 {
			b.WriteString("2 13:1" + nl) // the largest index in just one row
		}
	}
	b.WriteString("# the end" + nl)
	out := b.Bytes()
	if noNL {
		out = bytes.TrimSuffix(bytes.TrimSuffix(out, []byte("\n")), []byte("\r"))
	}
	return out
}

func TestLIBSVMMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	dir := t.TempDir()
	files := map[string][]byte{
		"edge1.svm": []byte("1 1:2"),
		"edge2.svm": []byte("\n\n  \t\n# only\n-1 3:0.5 1:1e-5 # c\r\n"),
		"edge3.svm": []byte("1 1:1\n# x 99:1\n0 2:2 #\n#"),
		"edge4.svm": []byte("1 1:1\n1 1:2\r"),
		"edge5.svm": []byte("+1 1:1 1:2\n"), // a repeated index: the last wins
		"empty.svm": []byte("# nothing\n\n"),
	}
	for k := range 8 {
		files[fmt.Sprintf("gen%d.svm", k)] = genLIBSVM(rng, 10+k*9, k&1 != 0, k&2 != 0)
	}
	for name, content := range files {
		want, err := refLIBSVM(content)
		if err != nil {
			t.Fatalf("%s: reference: %v", name, err)
		}
		for _, name := range []string{name, name + ".gz"} {
			t.Run(name, func(t *testing.T) {
				path := writeFile(t, dir, name, content)
				for _, v := range []int{1, 3, 7, len(want.y), len(want.y) + 4} {
					for _, f32 := range []bool{false, true} {
						src := mustOpen(t, Spec{Paths: []string{path}, Shards: v, Float32: f32})
						checkRead(t, src, want, allShards(src))
						checkRead(t, src, want, randomShards(rng, src))
					}
				}
				for _, nodes := range []int{2, 3} {
					srcs, err := openNodes(Spec{Paths: []string{path}, Shards: 5}, nodes)
					if err != nil {
						t.Fatalf("%d nodes: %v", nodes, err)
					}
					for _, src := range srcs {
						checkRead(t, src, want, allShards(src))
					}
				}
			})
		}
	}
}

// TestLIBSVMParts reads a data set cut into part files as the one file.
func TestLIBSVMParts(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	content := genLIBSVM(rng, 50, true, false)
	want, err := refLIBSVM(content)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(content, []byte("\n"))
	dir := t.TempDir()
	cuts := []int{0, 3, 3, len(lines) / 2, len(lines) - 2, len(lines)}
	for k := range len(cuts) - 1 {
		name := fmt.Sprintf("part-%05d.libsvm", k)
		if k%2 == 1 {
			name += ".gz"
		}
		writeFile(t, dir, name, bytes.Join(lines[cuts[k]:cuts[k+1]], nil))
	}
	for _, v := range []int{1, 2, 5, 11, len(want.y)} {
		src := mustOpen(t, Spec{Paths: []string{dir}, Shards: v})
		checkRead(t, src, want, allShards(src))
		checkRead(t, src, want, randomShards(rng, src))
		srcs, err := openNodes(Spec{Paths: []string{dir}, Shards: v}, 3)
		if err != nil {
			t.Fatalf("3 nodes: %v", err)
		}
		for _, src := range srcs {
			checkRead(t, src, want, randomShards(rng, src))
		}
	}
}

func TestLIBSVMErrors(t *testing.T) {
	// Each case also in a gzip file (the error names its line too).
	for _, tc := range []struct{ name, content, want string }{
		{"bad label", "1 1:1\n# c\nx 1:2\n", `:3: label: "x" is not a number`},
		{"inf label", "1 1:1\r\ninf 1:2\r\n", `:2: label: "inf" is not a finite number`},
		{"no colon", "1 1:1\n\n1 2\n", `:3: "2" is not an index:value pair`},
		{"index 0", "1 1:1\n1 0:1\n", `:2: "0:1": index "0" is not an integer >= 1`},
		{"negative index", "1 1:1\n1 -1:1\n", `:2: "-1:1": index "-1" is not an integer >= 1`},
		{"bad index", "1 1:1\n1 a:1\n", `:2: "a:1": index "a" is not an integer >= 1`},
		{"empty index", "1 1:1\n1 :1\n", `:2: ":1": index "" is not an integer >= 1`},
		{"bad value", "1 1:1\n1 2:x # c\n", `:2: "2:x": "x" is not a number`},
		{"empty value", "1 1:1\n1 2:\n", `:2: "2:": "" is not a number`},
		{"nan value", "1 1:1\n\n\n1 2:NaN", `:4: "2:NaN": "NaN" is not a finite number`},
		{"no feature", "1\n0\n", `: no row has a feature`},
		{"huge index", "1 99999999999:1\n", `above the limit`},
		{"huge value", "1 1:" + strings.Repeat("9", 2<<20) + "x\n", `:1: "1:` + strings.Repeat("9", 62) + `"… (2097155 bytes): "` + strings.Repeat("9", 64) + `"… (2097153 bytes) is not a number`},
	} {
		if tc.name == "huge index" {
			// the reference would make rows of 10^11 features
		} else if _, err := refLIBSVM([]byte(tc.content)); err == nil {
			t.Errorf("%s: the reference reads it", tc.name)
		}
		for _, name := range []string{"f.svm", "f.svm.gz"} {
			path := writeFile(t, t.TempDir(), name, []byte(tc.content))
			for _, v := range []int{1, 2} {
				err := readAllErr(Spec{Paths: []string{path}, Shards: v})
				if err == nil || !strings.HasPrefix(err.Error(), path) || !strings.Contains(err.Error(), tc.want) || len(err.Error()) > 400 {
					t.Errorf("%s: error %.500v, want %s...%s", tc.name, err, path, tc.want)
				}
			}
		}
	}
	// A bad label found after reading names its line.
	path := writeFile(t, t.TempDir(), "l.svm", []byte("# c\n1 1:1\n\n0 1:2\n# 2 1:1\n2 1:3\n"))
	src := mustOpen(t, Spec{Paths: []string{path}, Shards: 2})
	tables, err := src.ReadShards(context.Background(), []int{1})
	if err != nil {
		t.Fatal(err)
	}
	if err := tables[0].PrepareLabels(TaskBinary, 0); err == nil || err.Error() != path+":6: label 2 is not a binary label (0/1 or -1/+1)" {
		t.Errorf("PrepareLabels: %v", err)
	}
}
