package central

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/internal/swarm"
	"github.com/loteria-nacional/tp0/store"
)

// One central runs round after round by the operator's command: a new
// round is refused while the round is open, needs the token as a bearer
// credential, and once the round is over archives it and begins the next,
// which agencies then play; a backup is a store file of the live round.
func TestCentral_RoundsAndBackupByCommand(t *testing.T) {
	t.Parallel()
	c := newTestCentralWith(t, 2, func(o *Options) { o.AdminToken, o.MaxConns = "tok", 64 })
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.ServeAdmin(admin)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- c.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-served })
	base := "http://" + admin.Addr().String()
	do := func(method, path, token string) (int, []byte) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(""))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	play := func() {
		if _, err := swarm.Run(context.Background(), swarm.Config{Addr: ln.Addr().String(), Agencies: 2, Bets: 300, Window: 2, RetryTimeout: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	if code, _ := do(http.MethodPost, "/api/round", "tok"); code != http.StatusConflict {
		t.Fatalf("a new round while the round is open: %d, want 409", code)
	}
	play()
	first := c.round.Load()
	if code, _ := do(http.MethodPost, "/api/round", ""); code != http.StatusUnauthorized {
		t.Fatalf("a new round without the token: %d, want 401", code)
	}
	if code, b := do(http.MethodPost, "/api/round", "tok"); code != http.StatusOK {
		t.Fatalf("a new round: %d %s", code, b)
	}
	if c.round.Load() == first {
		t.Fatal("the round's id did not change")
	}
	archives, _ := store.Archives(c.opts.DBPath)
	if len(archives) != 1 {
		t.Fatalf("archives after a new round: %v", archives)
	}
	play()
	code, b := do(http.MethodGet, "/api/backup", "tok")
	if code != http.StatusOK {
		t.Fatalf("backup: %d", code)
	}
	file := filepath.Join(t.TempDir(), "backup.db")
	os.WriteFile(file, b, 0o600)
	s, err := store.Open(file, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r, _ := s.Round(); r.Bets != 600 || !r.Drawn {
		t.Fatalf("the backup holds %d bets, drawn %t; want the second round's 600, drawn", r.Bets, r.Drawn)
	}
	if code, _ := do(http.MethodGet, "/api/backup", ""); code != http.StatusUnauthorized {
		t.Fatalf("a backup without the token: %d, want 401", code)
	}
}
