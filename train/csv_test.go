package train

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const sampleCSV = `a,y,"b c"
1,10,2
3,11,"4"

5,12,6
7,13,8


`

func TestCSVRead(t *testing.T) {
	path := writeFile(t, "d.csv", sampleCSV)
	for _, c := range []struct {
		label   string
		names   []string
		x, y    []float64
		keep    func(int) bool
		rows    []int
		wantErr string
	}{
		{label: "y", names: []string{"a", "b c"}, rows: []int{0, 1, 2, 3},
			x: []float64{1, 2, 3, 4, 5, 6, 7, 8}, y: []float64{10, 11, 12, 13}},
		{label: "", names: []string{"a", "y"}, rows: []int{0, 1, 2, 3},
			x: []float64{1, 10, 3, 11, 5, 12, 7, 13}, y: []float64{2, 4, 6, 8}},
		{label: "y", names: []string{"a", "b c"}, keep: func(r int) bool { return r%2 == 1 }, rows: []int{1, 3},
			x: []float64{3, 4, 7, 8}, y: []float64{11, 13}},
	} {
		f, err := OpenCSV(path, c.label)
		if err != nil {
			t.Fatal(err)
		}
		if f.NumRows() != 4 || !slices.Equal(f.FeatureNames(), c.names) {
			t.Errorf("label %q: %d rows, features %q; want 4 rows, %q", c.label, f.NumRows(), f.FeatureNames(), c.names)
		}
		tab, err := f.Read(c.keep)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tab.Rows, c.rows) || !slices.Equal(tab.X, c.x) || !slices.Equal(tab.Y, c.y) || tab.Features != 2 {
			t.Errorf("label %q: rows %v X %v Y %v, want %v %v %v", c.label, tab.Rows, tab.X, tab.Y, c.rows, c.x, c.y)
		}
	}
}

func TestCSVErrors(t *testing.T) {
	for _, c := range []struct {
		name, text, label string
		want              []string // all in the error of OpenCSV or Read
	}{
		{"bad number", "x1,x2,x3,y\n1,2,3,4\n1,2,abc,4\n", "y", []string{"bad number.csv:3:", `column "x3" (3)`, `"abc" is not a number`}},
		{"empty value", "x1,y\n1,2\n,4\n", "y", []string{"empty value.csv:3:", `column "x1" (1)`, `"" is not a number`}},
		{"infinite", "x1,y\n1,Inf\n", "y", []string{"infinite.csv:2:", `column "y" (2)`, "not a finite number"}},
		{"field count", "x1,x2,y\n1,2,3\n1,2\n", "y", []string{"field count.csv:3:", "2 fields, the header has 3"}},
		{"no label", "x1,x2,y\n1,2,3\n", "price", []string{"no label.csv", `label column "price"`, `"x1", "x2", "y"`}},
		{"empty", "", "", []string{"empty.csv", "empty file"}},
		{"bad quote", "x,y\n1,\"2\n", "", []string{"bad quote.csv:2:"}},
	} {
		path := writeFile(t, c.name+".csv", c.text)
		f, err := OpenCSV(path, c.label)
		if err == nil {
			_, err = f.Read(nil)
		}
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", c.name, err, w)
			}
		}
	}
	if _, err := OpenCSV(filepath.Join(t.TempDir(), "missing.csv"), ""); err == nil || !strings.Contains(err.Error(), "missing.csv") {
		t.Errorf("missing file: %v", err)
	}
}

func TestCSVQuotedAndUnlabeled(t *testing.T) {
	path := writeFile(t, "q.csv", "\ufeff\"x, one\",\"y\"\n\" 1.5\",\"-2\"\n")
	f, err := OpenCSV(path, "y")
	if err != nil {
		t.Fatal(err)
	}
	tab, err := f.Read(nil)
	if err != nil {
		t.Fatal(err)
	}
	if tab.FeatureNames[0] != "x, one" || tab.X[0] != 1.5 || tab.Y[0] != -2 {
		t.Errorf("names %q X %v Y %v", tab.FeatureNames, tab.X, tab.Y)
	}
	u, err := OpenCSVUnlabeled(path)
	if err != nil {
		t.Fatal(err)
	}
	tab, err = u.Read(nil)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Features != 2 || !slices.Equal(tab.X, []float64{1.5, -2}) || tab.Y[0] == tab.Y[0] {
		t.Errorf("unlabeled: features %d X %v Y %v, want 2, [1.5 -2], NaN", tab.Features, tab.X, tab.Y)
	}
}

func TestPrepareLabelsErrorNamesLine(t *testing.T) {
	path := writeFile(t, "l.csv", "x,y\n1,0\n2,3\n")
	f, _ := OpenCSV(path, "")
	tab, err := f.Read(nil)
	if err != nil {
		t.Fatal(err)
	}
	err = tab.PrepareLabels(TaskMulticlass, 3)
	if err == nil || !strings.Contains(err.Error(), "l.csv:3: label 3 is not a class index (0..2)") {
		t.Errorf("PrepareLabels: %v", err)
	}
	if err := tab.PrepareLabels(TaskMulticlass, 4); err != nil || tab.MaxLabel() != 3 {
		t.Errorf("PrepareLabels with 4 classes: %v, max label %v", err, tab.MaxLabel())
	}
	if err := tab.PrepareLabels(TaskBinary, 2); err == nil || !strings.Contains(err.Error(), "l.csv:3: label 3 is not a binary label") {
		t.Errorf("PrepareLabels binary: %v", err)
	}
}
