package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/loteria-nacional/tp0/store"
)

// startAdminCentral starts a central with its admin listener on a free
// port and returns it with the admin base URL.
func startAdminCentral(t *testing.T, db string, agencies int, env ...string) (*central, string) {
	t.Helper()
	c := startCentral(t, db, agencies, append([]string{"ADMIN_ADDR=127.0.0.1:0"}, env...)...)
	line := c.waitLine(`action: admin_listen \| result: success \| direccion: `, 5*time.Second)
	return c, "http://" + line[strings.LastIndex(line, " ")+1:]
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrape fetches /metrics and parses it with Prometheus's own text parser.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return families
}

// value returns the value of family's sample whose labels include labels.
func value(t *testing.T, fams map[string]*dto.MetricFamily, family string, labels ...string) float64 {
	t.Helper()
	f, ok := fams[family]
	if !ok {
		t.Fatalf("no metric %s", family)
	}
	for _, m := range f.GetMetric() {
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("no sample of %s with %v", family, labels)
	return 0
}

// After a whole round, what /metrics says is what the store holds.
func TestAdmin_MetricsAfterRound(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "bets.db")
	c, base := startAdminCentral(t, db, 3)
	if code, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: %d", code)
	}
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
	want := expectedWinners(t, genData, 3)
	agencies := []*proc{nil}
	for id := 1; id <= 3; id++ {
		agencies = append(agencies, startAgency(t, c, id, genData))
	}
	waitAgencies(t, agencies, want)
	c.waitLine(`action: consulta_ganadores \| result: success \| agencia: \d+`, 5*time.Second)
	fams := scrape(t, base)
	s, err := store.Open(db, store.Options{LockTimeout: time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatal("the store is not locked by the running central")
	}
	total := 0
	for id := 1; id <= 3; id++ {
		n := len(fileBets(t, genData, id))
		total += n
		if got := value(t, fams, "tp0_bets_stored", "agency", fmt.Sprint(id)); got != float64(n) {
			t.Errorf("tp0_bets_stored{agency=%d} = %v, want %d", id, got, n)
		}
		if got := value(t, fams, "tp0_winners", "agency", fmt.Sprint(id)); got != float64(want[id]) {
			t.Errorf("tp0_winners{agency=%d} = %v, want %d", id, got, want[id])
		}
	}
	for _, tt := range []struct {
		family string
		want   float64
	}{{"tp0_bets_stored_total", float64(total)}, {"tp0_agencies_finished", 3}, {"tp0_agencies", 3}, {"tp0_draw_done", 1}, {"tp0_winners_delivered", 3}} {
		if got := value(t, fams, tt.family); got != tt.want {
			t.Errorf("%s = %v, want %v", tt.family, got, tt.want)
		}
	}
	if value(t, fams, "tp0_batches_total", "result", "stored") < 3 || value(t, fams, "tp0_commit_seconds") < 3 ||
		value(t, fams, "tp0_commits_total") < 1 || value(t, fams, "tp0_draw_duration_seconds") <= 0 {
		t.Error("batch, commit or draw metrics did not move")
	}
	value(t, fams, "tp0_protocol_errors_total", "code", "gap") // present at 0
	value(t, fams, "go_goroutines")
	value(t, fams, "process_resident_memory_bytes")

	code, body := get(t, base+"/api/status")
	var st struct {
		State     string `json:"state"`
		Delivered int    `json:"delivered"`
		Rows      []struct {
			Agency, Winners int
			Committed       uint64
		} `json:"rows"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.State != "terminada" || st.Delivered != 3 || len(st.Rows) != 3 {
		t.Fatalf("/api/status: %d %s", code, body)
	}
	if code, page := get(t, base+"/"); code != http.StatusOK || !strings.Contains(page, "terminada") || !strings.Contains(page, `data-agency="3"`) {
		t.Fatalf("status page: %d", code)
	}
	// Personal data stays out: no winner's document on the page or in the JSON.
	for _, b := range fileBets(t, genData, 1) {
		if b.Number == 7574 && (strings.Contains(body, b.Document) || strings.Contains(get2(t, base+"/"), b.Document)) {
			t.Fatalf("a winner's document %s is served", b.Document)
		}
	}
	c.signal(sigterm)
	c.wait(time.Minute)
}

func get2(t *testing.T, url string) string { _, b := get(t, url); return b }
