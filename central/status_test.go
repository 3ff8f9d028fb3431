package central

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/loteria-nacional/tp0/lottery"
)

// A scrape and the status page cost what the agencies seen cost, not what
// AGENCIES says (AGENCIES=999999 once made one /metrics scrape cost 35 MB).
func TestStatus_CostIndependentOfUnseenAgencies(t *testing.T) {
	t.Parallel()
	c := newTestCentral(t, MaxAgencies)
	st, err := c.status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.rows) != 0 || st.Unseen != MaxAgencies {
		t.Fatalf("%d rows and %d unseen before any agency, want 0 and %d", len(st.rows), st.Unseen, MaxAgencies)
	}
	if _, err := c.store.Append(7, 0, lottery.BetSlice(nil)); err != nil {
		t.Fatal(err)
	}
	h := c.adminHandler()
	for _, path := range []string{"/metrics", "/api/status", "/"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1"+path, nil))
		if rec.Code != http.StatusOK || rec.Body.Len() > 64<<10 {
			t.Fatalf("%s: %d, %d bytes with %d agencies configured and none seen", path, rec.Code, rec.Body.Len(), MaxAgencies)
		}
	}
}
