package protocol

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// thousands writes n with a comma every three digits, as the documents do.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// The numbers the documents state are the code's: a constant changed here
// without them fails this test.
func TestDocsStateTheCodesNumbers(t *testing.T) {
	t.Parallel()
	for file, phrases := range map[string][]string{
		"../docs/protocol.md": {
			fmt.Sprintf("**Frame header (%d bytes)**", HeaderSize),
			fmt.Sprintf("frames of at most %s bytes, header included (`protocol.MaxBatchFrame`)", thousands(MaxBatchFrame)),
			fmt.Sprintf("(%d KiB frames)", MaxFrame>>10),
			fmt.Sprintf("(%d bytes + its strings;", betFixed),
			fmt.Sprintf("message (≤ %s bytes)", thousands(maxMessage)),
			fmt.Sprintf("marker `0x%X`", Marker),
		},
		"../README.md": {
			fmt.Sprintf("each frame at most %s bytes", thousands(MaxBatchFrame)),
		},
		"../docs/configuration.md": {
			fmt.Sprintf("a frame is cut at %s bytes first", thousands(MaxBatchFrame)),
		},
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range phrases {
			if !strings.Contains(string(b), p) {
				t.Errorf("%s does not say %q", file, p)
			}
		}
	}
}
