package config

import (
	"testing"
)

// FuzzParse: Parse never panics, and what it accepts validates (again) and
// has a digest, the same every time. The seeds are in
// testdata/fuzz/FuzzParse/.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := Parse(doc)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a config and the error %v", err)
			}
			return
		}
		if c == nil {
			t.Fatal("Parse returned neither a config nor an error")
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate refuses: %v\n%s", err, doc)
		}
		d := c.Digest()
		if len(d) != 64 {
			t.Fatalf("digest %q, want 64 hex digits", d)
		}
		if again := c.Digest(); again != d {
			t.Fatalf("digest %s, then %s", d, again)
		}
		c2, err := Parse(doc)
		if err != nil {
			t.Fatalf("the second Parse of the same document: %v", err)
		}
		if d2 := c2.Digest(); d2 != d {
			t.Fatalf("the same document has the digests %s and %s", d, d2)
		}
	})
}
