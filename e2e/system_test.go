package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runAll runs a central and agencies 1..n on dataDir to the end and checks
// every log line of the flow; it returns the central (stopped) for more checks.
func runAll(t *testing.T, dataDir string, n int, wantWinners map[int]int) *central {
	t.Helper()
	c := startCentral(t, filepath.Join(t.TempDir(), "bets.db"), n)
	agencies := make([]*proc, n+1)
	for i := 1; i <= n; i++ {
		agencies[i] = startAgency(t, c, i, dataDir)
	}
	for i := 1; i <= n; i++ {
		a := agencies[i]
		if code := a.wait(3 * time.Minute); code != 0 {
			t.Fatalf("agency %d exited %d", i, code)
		}
		line := a.waitLine(`action: consulta_ganadores \| result: success \| cant_ganadores: \d+$`, time.Second)
		if got := lastInt(line); got != wantWinners[i] {
			t.Errorf("agency %d: %d winners, want %d", i, got, wantWinners[i])
		}
		a.waitLine(`action: apuestas_enviadas \| result: success \| cantidad: \d+ \| descartadas: 0$`, time.Second)
		a.waitLine(`action: progreso \| result: in_progress \| enviadas: \d+ \| porcentaje: 100$`, time.Second)
		a.waitLine(`action: config \| result: success \| .*id: `+strconv.Itoa(i)+` `, time.Second)
		if fails := a.grep(`result: fail`); len(fails) > 0 {
			t.Errorf("agency %d logged failures: %v", i, fails)
		}
	}
	c.waitLine(`action: sorteo \| result: success`, time.Second)
	if got := len(c.grep(`action: sorteo \| result: success`)); got != 1 {
		t.Errorf("draw ran %d times, want once", got)
	}
	c.waitLine(`action: apuesta_recibida \| result: success \| cantidad: \d+$`, time.Second)
	if fails := c.grep(`result: fail`); len(fails) > 0 {
		t.Errorf("central logged failures: %v", fails)
	}
	c.signal(sigterm)
	if code := c.wait(10 * time.Second); code != 0 {
		t.Fatalf("central exited %d", code)
	}
	for _, l := range []string{"close_listener", "close_store", "shutdown"} {
		c.waitLine(`action: `+l+` \| result: success`, time.Second)
	}
	return c
}

func lastInt(line string) int {
	m := regexp.MustCompile(`(\d+)\s*$`).FindStringSubmatch(line)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestSystem_OfficialDataset(t *testing.T) {
	t.Parallel()
	dir := needOfficial(t)
	c := runAll(t, dir, 5, map[int]int{1: 2, 2: 3, 3: 3, 4: 2, 5: 0})
	rep := verifyStore(t, c.dbPath, dir, 5)
	if rep.total != 78697 || countZipRows(t) != 78697 {
		t.Fatalf("store holds %d bets, want 78697", rep.total)
	}
	if !rep.round.Drawn || len(rep.round.Delivered) != 5 {
		t.Fatalf("round after the run: drawn %v, delivered %v", rep.round.Drawn, rep.round.Delivered)
	}
}

func TestSystem_GeneratedData(t *testing.T) {
	t.Parallel()
	c := runAll(t, genData, 5, expectedWinners(t, genData, 5))
	rep := verifyStore(t, c.dbPath, genData, 5)
	if rep.total != 20000 {
		t.Fatalf("store holds %d bets, want 20000", rep.total)
	}
}

// Batches are cut at 8 kB whatever maxAmount says, and the bet that did not
// fit opens the next batch: every row arrives.
func TestSystem_ByteLimitedBatchesLoseNothing(t *testing.T) {
	t.Parallel()
	c := startCentral(t, filepath.Join(t.TempDir(), "bets.db"), 1)
	a := startAgency(t, c, 1, genData, "CLI_BATCH_MAXAMOUNT=100000", "CLI_LOG_LEVEL=DEBUG")
	if code := a.wait(time.Minute); code != 0 {
		t.Fatalf("agency exited %d", code)
	}
	batches := c.grep(`apuesta_recibida \| result: success`)
	for _, l := range batches[:len(batches)-1] { // the last one takes what is left
		if n := lastInt(l); n < 150 || n > 8192/12 {
			t.Fatalf("batch of %d bets: not filled to 8 kB", n)
		}
	}
	c.signal(sigterm)
	c.wait(10 * time.Second)
	want := len(fileBets(t, genData, 1))
	if rep := verifyStore(t, c.dbPath, genData, 1); rep.total != want {
		t.Fatalf("stored %d of %d", rep.total, want)
	}
}

func TestSystem_SingleBet(t *testing.T) {
	t.Parallel()
	c := startCentral(t, filepath.Join(t.TempDir(), "bets.db"), 1)
	a := startAgency(t, c, 1, t.TempDir(), "NOMBRE=Tomàs", "APELLIDO=D'Elia", "DOCUMENTO=30904465",
		"NACIMIENTO=1999-03-17", "NUMERO=7574")
	if code := a.wait(time.Minute); code != 0 {
		t.Fatalf("agency exited %d", code)
	}
	a.waitLine(`action: apuesta_enviada \| result: success \| dni: 30904465 \| numero: 7574$`, time.Second)
	a.waitLine(`action: consulta_ganadores \| result: success \| cant_ganadores: 1$`, time.Second)
	c.waitLine(`INFO     action: apuesta_almacenada \| result: success \| dni: 30904465 \| numero: 7574$`, time.Second)
}

func TestSystem_SingleBetInvalid(t *testing.T) {
	t.Parallel()
	c := startCentral(t, filepath.Join(t.TempDir(), "bets.db"), 1)
	a := startAgency(t, c, 1, t.TempDir(), "NOMBRE=Ana", "APELLIDO=Paz", "DOCUMENTO=12ab",
		"NACIMIENTO=1999-03-17", "NUMERO=1")
	if code := a.wait(time.Minute); code == 0 {
		t.Fatal("agency with an invalid bet exited 0")
	}
	a.waitLine(`action: config \| result: fail \| .*document "12ab" is not 1 to 10 digits`, time.Second)
}

// An invalid row in the CSV is logged with file, line, field and reason,
// skipped and counted; every other row arrives.
func TestSystem_InvalidRowsSkipped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rows := "Ana,Paz,1,1990-01-01,7574\r\n" +
		"Bad,Date,2,1990-02-30,1\r\n" +
		"Too,Few,3\r\n" +
		"Luis,\"Pérez, Jr\",4,1980-05-05,10000\r\n" +
		"Eva,O'Neil,5,1985-05-05,42\r\n"
	writeFile(t, filepath.Join(dir, "agency-1.csv"), rows)
	c := startCentral(t, filepath.Join(t.TempDir(), "bets.db"), 1)
	a := startAgency(t, c, 1, dir)
	if code := a.wait(time.Minute); code != 0 {
		t.Fatalf("agency exited %d", code)
	}
	csvPath := filepath.Join(dir, "agency-1.csv")
	for _, want := range []string{
		`archivo: ` + regexp.QuoteMeta(csvPath) + ` \| linea: 2 \| campo: birthdate`,
		`linea: 3 \| campo: - \| error: row does not have 5 fields`,
		`linea: 4 \| campo: number`,
		`action: apuestas_enviadas \| result: success \| cantidad: 2 \| descartadas: 3$`,
		`cant_ganadores: 1$`,
	} {
		a.waitLine(want, time.Second)
	}
}

func TestSystem_Echo(t *testing.T) {
	t.Parallel()
	c := startCentral(t, filepath.Join(t.TempDir(), "bets.db"), 1)
	got := echo(t, c.addr, "hola central\n")
	if got != "hola central\n" {
		t.Fatalf("echo answered %q", got)
	}
	c.waitLine(`action: receive_message \| result: success \| ip: 127.0.0.1 \| msg: hola central$`, 5*time.Second)
}

func TestSystem_BadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		bin  string
		env  []string
		want string
	}{
		{"ServerPort", "server", []string{"SERVER_PORT=abc"}, `SERVER_PORT = "abc": not a whole number`},
		{"ServerAgencies", "server", []string{"AGENCIES=0"}, `AGENCIES = "0": must be between 1`},
		{"ServerAgenciesUnreal", "server", []string{"AGENCIES=999999"}, `AGENCIES = "999999": must be between 1 and 10000`},
		{"ServerLevel", "server", []string{"LOGGING_LEVEL=LOUD"}, `LOGGING_LEVEL = "LOUD": unknown level`},
		{"ServerIdle", "server", []string{"IDLE_TIMEOUT=soon"}, `IDLE_TIMEOUT = "soon"`},
		{"ServerIdleTiny", "server", []string{"IDLE_TIMEOUT=1ns"}, `IDLE_TIMEOUT = "1ns": must be between 100ms and 1h0m0s`},
		{"ServerGroupCommit", "server", []string{"GROUP_COMMIT=maybe"}, `GROUP_COMMIT = "maybe": not true or false`},
		{"ServerMaxConns", "server", []string{"MAX_CONNECTIONS=0"}, `MAX_CONNECTIONS = "0": must be between 1`},
		{"AgencyMaxAmount", "agency", []string{"CLI_ID=1", "CLI_BATCH_MAXAMOUNT=many"}, `batch.maxAmount = "many": not a whole number`},
		{"AgencyID", "agency", []string{"CLI_ID=-3"}, `id = "-3": must be between 1`},
		{"AgencyNoID", "agency", nil, `id = "": the agency's id is not set: set CLI_ID=N`},
		{"AgencyLevel", "agency", []string{"CLI_ID=1", "CLI_LOG_LEVEL=chatty"}, `log.level = "chatty"`},
		{"AgencyTimeout", "agency", []string{"CLI_ID=1", "CLI_WINNERS_TIMEOUT=-1s"}, `winners.timeout = "-1s"`},
		{"AgencyNothingToDo", "agency", []string{"CLI_ID=1"}, `data.path = "./.data/agency-1.csv": no such file`},
		{"AgencyDataDirectory", "agency", []string{"CLI_ID=1", "CLI_DATA_PATH=/tmp"}, `data.path = "/tmp": is not a regular file`},
		{"AgencyAddressNoPort", "agency", []string{"CLI_ID=1", "CLI_SERVER_ADDRESS=nohostport"}, `server.address = "nohostport": not host:port`},
		{"AgencyAddressPort", "agency", []string{"CLI_ID=1", "CLI_SERVER_ADDRESS=:99999"}, `server.address = ":99999": no host`},
		{"AgencyAddressBigPort", "agency", []string{"CLI_ID=1", "CLI_SERVER_ADDRESS=server:99999"}, `port "99999" is not in 1..65535`},
		{"AgencyMalformedFile", "agency", []string{"CLI_ID=1", "CLI_CONFIG=" + writeTemp(t, "bad.yaml", "server: [unclosed\n")}, `is malformed`},
		{"ServerMalformedFile", "server", []string{"SERVER_CONFIG=" + writeTemp(t, "bad.ini", "[DEFAULT\nSERVER_PORT=1\n")}, `is malformed`},
		{"ServerNamedConfigMissing", "server", []string{"SERVER_CONFIG=/nonexistent/config.ini"}, `config file /nonexistent/config.ini: open`},
		{"ServerConfigIsADirectory", "server", []string{"SERVER_CONFIG=/tmp"}, `config file /tmp is not a regular file`},
		{"AgencyNamedConfigMissing", "agency", []string{"CLI_ID=1", "CLI_CONFIG=/nonexistent/config.yaml"}, `config file /nonexistent/config.yaml: open`},
		{"ServerDenySerial", "server", []string{"TLS_DENY_SERIALS=ab,not-a-serial"}, `TLS_DENY_SERIALS = "ab,not-a-serial": not a certificate serial number: "not-a-serial"`},
		{"ServerAdminEverywhereNoToken", "server", []string{"ADMIN_ADDR=:0"}, `ADMIN_ADDR = ":0": listens beyond this machine's loopback: set ADMIN_TOKEN`},
		{"ServerAdminAddr", "server", []string{"ADMIN_ADDR=8080"}, `ADMIN_ADDR = "8080": not host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, tt.bin, t.TempDir(), append(tt.env, "DB_PATH="+filepath.Join(t.TempDir(), "b.db"))...)
			if code := p.wait(30 * time.Second); code == 0 {
				t.Fatal("exited 0 with a bad config")
			}
			p.waitLine(`action: config \| result: fail \| error: .*`+regexp.QuoteMeta(tt.want), time.Second)
		})
	}
	// Every bad key at once, one line each.
	p := start(t, "server", t.TempDir(), "SERVER_PORT=abc", "AGENCIES=0", "GROUP_COMMIT=maybe")
	if code := p.wait(30 * time.Second); code == 0 {
		t.Fatal("exited 0 with a bad config")
	}
	if n := len(p.grep(`action: config \| result: fail \| error: config key`)); n != 3 {
		t.Fatalf("%d config fail lines for three bad keys:\n%s", n, p.output())
	}
}

// The config file sets values; the environment overrides them; a missing file is fine.
func TestSystem_ConfigPrecedence(t *testing.T) {
	t.Parallel()
	ini := writeTemp(t, "config.ini", "[DEFAULT]\nSERVER_PORT = 1\nAGENCIES = 3\nLOGGING_LEVEL = DEBUG\n")
	c := startCentral(t, filepath.Join(t.TempDir(), "bets.db"), 2, "SERVER_CONFIG="+ini)
	line := c.waitLine(`action: config \| result: success`, time.Second)
	// The environment (SERVER_PORT=0, AGENCIES=2) wins over the file (1, 3).
	for _, want := range []string{"logging_level: DEBUG", "agencies: 2", "server_port: 0"} {
		if !strings.Contains(line, want) {
			t.Errorf("config line %q lacks %q", line, want)
		}
	}
	yaml := writeTemp(t, "config.yaml", "id: 7\nbatch:\n  maxAmount: 33\nlog:\n  level: WARNING\n")
	dir := t.TempDir() // with the default data path's file in it
	os.Mkdir(filepath.Join(dir, ".data"), 0o755)
	writeFile(t, filepath.Join(dir, ".data", "agency-7.csv"), "Ana,Paz,1,1990-01-01,7574\n")
	a := start(t, "agency", dir, "CLI_CONFIG="+yaml, "CLI_LOG_LEVEL=INFO", "CLI_SERVER_ADDRESS=127.0.0.1:1",
		"CLI_RECONNECT_ATTEMPTS=0")
	line = a.waitLine(`action: config \| result: success`, 10*time.Second)
	for _, want := range []string{"id: 7", "batch_max_amount: 33", "log_level: INFO", "data_path: ./.data/agency-7.csv"} {
		if !strings.Contains(line, want) {
			t.Errorf("config line %q lacks %q", line, want)
		}
	}
	if code := a.wait(30 * time.Second); code == 0 {
		t.Fatal("agency with no server exited 0")
	}
	a.waitLine(`result: fail \| error: .*127.0.0.1:1`, time.Second)
}
