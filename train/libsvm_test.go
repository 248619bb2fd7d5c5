package train

import (
	"slices"
	"strings"
	"testing"
)

func TestLIBSVMRead(t *testing.T) {
	path := writeFile(t, "d.svm", "# a comment\n+1 1:0.5 3:2\n-1 2:-1 # trailing comment\n\n+1 4:7\n")
	f, err := OpenLIBSVM(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.NumRows() != 3 || f.NumFeatures() != 4 {
		t.Fatalf("%d rows, %d features; want 3, 4", f.NumRows(), f.NumFeatures())
	}
	tab, err := f.Read(func(r int) bool { return r != 1 })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tab.Rows, []int{0, 2}) || !slices.Equal(tab.X, []float64{0.5, 0, 2, 0, 0, 0, 0, 7}) {
		t.Errorf("rows %v X %v", tab.Rows, tab.X)
	}
	tab, err = f.Read(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.PrepareLabels(TaskBinary, 2); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tab.Y, []float64{1, 0, 1}) {
		t.Errorf("labels %v after PrepareLabels(binary), want [1 0 1]", tab.Y)
	}
}

func TestLIBSVMErrors(t *testing.T) {
	for _, c := range []struct{ name, text, want string }{
		{"value", "1 1:2\n0 1:3 2:x\n", `value.svm:2: "2:x": "x" is not a number`},
		{"index", "1 1:2\n0 0:3\n", `index.svm:2: "0:3": index "0" is not an integer >= 1`},
		{"pair", "1 1:2\n1 1:2 7\n", `pair.svm:2: "7" is not an index:value pair`},
		{"label", "1 1:2\nyes 1:3\n", `label.svm:2: label: "yes" is not a number`},
	} {
		path := writeFile(t, c.name+".svm", c.text)
		f, err := OpenLIBSVM(path)
		if err == nil {
			_, err = f.Read(nil)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
	}
}
