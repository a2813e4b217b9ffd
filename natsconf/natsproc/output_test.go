package natsproc

import (
	"bytes"
	"strings"
	"testing"
)

// TestOutputKeepsTheTail checks that a long-running server's output stays bounded in
// memory while offsets keep counting everything written, and that the copy gets it all.
func TestOutputKeepsTheTail(t *testing.T) {
	var copied bytes.Buffer
	o := output{copy: &copied}
	line := strings.Repeat("x", 1023) + "\n"
	total := 0
	for range 3 * keepSize / len(line) {
		o.Write([]byte(line))
		total += len(line)
	}
	off := o.Len()
	o.Write([]byte("after\n"))
	total += len("after\n")
	if o.Len() != total {
		t.Fatalf("Len() = %d, want %d", o.Len(), total)
	}
	if kept := len(o.String()); kept > keepSize+keepSize/4 || kept < keepSize {
		t.Fatalf("keeps %d bytes, want about %d", kept, keepSize)
	}
	if got := o.Since(off); got != "after\n" {
		t.Fatalf("Since(%d) = %q", off, got)
	}
	if got := o.Since(0); got != o.String() {
		t.Fatalf("Since(0) is not everything kept")
	}
	if !strings.HasSuffix(o.Tail(), "after\n") || len(o.Tail()) != tailSize {
		t.Fatalf("Tail() has %d bytes, ends %q", len(o.Tail()), o.Tail()[len(o.Tail())-10:])
	}
	if copied.Len() != total {
		t.Fatalf("copy got %d bytes, want %d", copied.Len(), total)
	}
}
