package agency

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/logformat"
)

// BenchmarkCSVSource parses and validates agency rows (one op = one row).
func BenchmarkCSVSource(b *testing.B) {
	var sb strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&sb, "Agustín Emanuel,D'Elia,%d,2000-05-10,%d\r\n", 20000000+i, i)
	}
	path := filepath.Join(b.TempDir(), "agency-1.csv")
	os.WriteFile(path, []byte(sb.String()), 0o644)
	log := logformat.Discard
	b.SetBytes(int64(sb.Len() / 10000))
	b.ReportAllocs()
	var src *csvSource
	for b.Loop() {
		if src == nil {
			var err error
			if src, err = openCSV(path, 1, log, 0, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := src.Next(); err == io.EOF {
			src.f.Close()
			src = nil
		} else if err != nil {
			b.Fatal(err)
		}
	}
}
