package agency

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/protocol"
)

func quietLog() logformat.Logger { return logformat.Discard }

func TestCSVSource(t *testing.T) {
	t.Parallel()
	rows := "\xef\xbb\xbfAna,Paz,1,1990-01-01,7574\r\n" + // BOM, CRLF
		"Bad,Date,2,1990-02-30,1\n" +
		"Too,Few,3\n" +
		"Luis,\"Pérez, Jr\",4,1980-05-05,9\n" + // quoted comma
		"Neg,Num,5,1980-05-05,-1\n" +
		"Doc,Letters,5a,1980-05-05,1\n" +
		"Eva,O'Neil,0042,1985-05-05,42" // no final newline, leading zeros kept
	path := filepath.Join(t.TempDir(), "agency-3.csv")
	if err := os.WriteFile(path, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := openCSV(path, 3, quietLog(), 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var got []lottery.Bet
	for {
		b, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b)
	}
	want := []string{"Ana/Paz/1/7574", "Luis/Pérez, Jr/4/9", "Eva/O'Neil/0042/42"}
	if len(got) != len(want) {
		t.Fatalf("got %d bets %+v, want %d", len(got), got, len(want))
	}
	for i, b := range got {
		if s := b.FirstName + "/" + b.LastName + "/" + b.Document + "/" + itoa(b.Number); s != want[i] || b.Agency != 3 {
			t.Errorf("bet %d = %s (agency %d), want %s", i, s, b.Agency, want[i])
		}
	}
	if src.Discarded() != 4 || src.Progress() != 1 {
		t.Fatalf("discarded %d, progress %v", src.Discarded(), src.Progress())
	}
}

func TestCSVSource_RowError(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.csv")
	os.WriteFile(path, []byte("Ana,Paz,1,1990-01-01,7574\nAna,Paz,1,1990-01-01,10000\n"), 0o644)
	src, err := openCSV(path, 1, quietLog(), 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	rec := []string{"Ana", "Paz", "1", "1990-01-01", "10000"}
	_, rerr := src.parse(rec, 2)
	if rerr == nil || rerr.Line != 2 || rerr.Field != lottery.FieldNumber || !errors.Is(rerr, lottery.ErrNumberRange) || rerr.File != path {
		t.Fatalf("got %#v", rerr)
	}
}

func TestOpenCSV_Missing(t *testing.T) {
	t.Parallel()
	if _, err := openCSV(filepath.Join(t.TempDir(), "none.csv"), 1, quietLog(), 0, time.Now()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
}

func TestSingleBetFromEnv(t *testing.T) {
	t.Parallel()
	full := map[string]string{"NOMBRE": "Tomàs", "APELLIDO": "D'Elia", "DOCUMENTO": "30904465", "NACIMIENTO": "1999-03-17", "NUMERO": "7574"}
	env := func(m map[string]string, drop string, set ...string) func(string) string {
		c := map[string]string{}
		for k, v := range m {
			if k != drop {
				c[k] = v
			}
		}
		for i := 0; i+1 < len(set); i += 2 {
			c[set[i]] = set[i+1]
		}
		return func(k string) string { return c[k] }
	}
	tests := []struct {
		name   string
		getenv func(string) string
		single bool
		ok     bool
	}{
		{"None", env(nil, ""), false, true},
		{"Full", env(full, ""), true, true},
		{"ErrMissingOne", env(full, "NUMERO"), true, false},
		{"ErrNumber", env(full, "", "NUMERO", "siete"), true, false},
		{"ErrDate", env(full, "", "NACIMIENTO", "17/03/1999"), true, false},
		{"ErrDocument", env(full, "", "DOCUMENTO", "30.904.465"), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bet, single, err := singleBetFromEnv(2, tt.getenv)
			if single != tt.single || (err == nil) != tt.ok {
				t.Fatalf("single %v, err %v", single, err)
			}
			if tt.ok && single && (bet.Agency != 2 || bet.Number != 7574 || bet.LastName != "D'Elia") {
				t.Fatalf("bet %+v", bet)
			}
		})
	}
}

// An error reply is retried exactly when the protocol's table says so.
func TestRecvErrorPolicy(t *testing.T) {
	t.Parallel()
	for _, code := range protocol.Codes() {
		client, server := net.Pipe()
		go func() {
			protocol.Write(server, protocol.NewError(code, "x"))
			server.Close()
		}()
		c := &conn{Conn: client, r: protocol.NewReader(client, 0)}
		_, err := c.recv(time.Second)
		client.Close()
		if !errors.Is(err, &protocol.Error{Code: code}) || isPermanent(err) == code.Retryable() {
			t.Errorf("%s: got %v (permanent %t), want retryable %t", code, err, isPermanent(err), code.Retryable())
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
