package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser returns a headless Chromium context, or skips the test when no
// browser is installed (unless TP0_REQUIRE_BROWSER=1, as in CI).
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("TP0_REQUIRE_BROWSER") == "1" {
			t.Fatal("no Chromium on PATH; TP0_REQUIRE_BROWSER=1 requires one (apt-get install chromium)")
		}
		t.Skip("no Chromium on PATH (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1200, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

// textOf reads an element's text.
func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// waitText polls an element until cond holds for its text, up to d.
func waitText(t *testing.T, ctx context.Context, sel string, d time.Duration, cond func(string) bool) string {
	t.Helper()
	var s string
	if !poll(d, func() bool { s = textOf(t, ctx, sel); return cond(s) }) {
		t.Fatalf("%s stayed %q for %s", sel, s, d)
	}
	return s
}

// The status page in a real browser: during a round its rows and counts
// move without a reload, and the draw's result appears once it ran.
func TestAdmin_StatusPageInBrowser(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	db := filepath.Join(t.TempDir(), "bets.db")
	c, base := startAdminCentral(t, db, 2)
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(`#state`)); err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, ctx, "#state"); got != "recibiendo apuestas" {
		t.Fatalf("state before any bet: %q", got)
	}
	if got := textOf(t, ctx, "#unseen"); got != "2" {
		t.Fatalf("agencies without activity before any bet: %q", got)
	}
	// Small batches, one in flight: a round slow enough to watch.
	agencies := []*proc{nil}
	for id := 1; id <= 2; id++ {
		agencies = append(agencies, startAgency(t, c, id, genData, "CLI_BATCH_MAXAMOUNT=2", "CLI_BATCH_WINDOW=1"))
	}
	first := waitText(t, ctx, "#bets", time.Minute, func(s string) bool { n, _ := strconv.Atoi(s); return n > 0 })
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#rows tr[data-agency="1"]`)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#bets", time.Minute, func(s string) bool { return s != first }) // it moves by itself
	width, err := chromedp.Run(ctx, chromedp.AttributeValue(`#rows tr[data-agency="1"] .bar span`, "style"))
	if err != nil || !strings.Contains(width.Value, "width:") {
		t.Fatalf("progress bar style %q (%v)", width.Value, err)
	}
	if shot := os.Getenv("TP0_SCREENSHOT"); shot != "" {
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			os.WriteFile(shot, png, 0o644)
		}
	}
	want := expectedWinners(t, genData, 2)
	waitAgencies(t, agencies, want)
	draw := waitText(t, ctx, "#draw", time.Minute, func(s string) bool { return strings.HasSuffix(s, "ganadores") })
	if draw != strconv.Itoa(want[1]+want[2])+" ganadores" {
		t.Fatalf("draw shows %q, want %d winners", draw, want[1]+want[2])
	}
	waitText(t, ctx, "#state", time.Minute, func(s string) bool { return s == "terminada" })
	c.signal(sigterm)
	c.wait(time.Minute)
}
