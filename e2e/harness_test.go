package e2e

import (
	"archive/zip"
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/internal/dataset"
)

// Paths set up once by TestMain.
var (
	binDir      string // server, agency and gendata binaries
	genData     string // generated data for 5 agencies (20,000 bets)
	bigData     string // generated data for 2 agencies (400,000 bets), slow enough to interrupt
	midData     string // generated data for 2 agencies (30,000 bets): a round that lasts through faults
	officialDir string // the official dataset, extracted; "" when absent
)

// datasetZip is the course's official dataset as every program finds it
// (internal/dataset), "" when there is none; datasetLine says which.
var datasetZip, datasetLine = findDataset()

func findDataset() (string, string) {
	path, from, err := dataset.Find()
	return path, dataset.Describe(path, from, err)
}

func TestMain(m *testing.M) {
	os.Exit(setup(m))
}

func setup(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "tp0-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	binDir = filepath.Join(tmp, "bin")
	for _, pkg := range []string{"server", "cmd/agency", "scripts/gendata"} {
		cmd := exec.Command("go", "build", "-race", "-tags", "tp0testhooks", "-o", filepath.Join(binDir, filepath.Base(pkg)), "../"+pkg)
		if pkg == "scripts/gendata" {
			cmd.Args = []string{"go", "build", "-o", filepath.Join(binDir, "gendata"), "../" + pkg}
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	genData = filepath.Join(tmp, "gen")
	if out, err := exec.Command(filepath.Join(binDir, "gendata"), "-out", genData, "-agencies", "5", "-bets", "20000").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "gendata: %v\n%s", err, out)
		return 1
	}
	bigData = filepath.Join(tmp, "big")
	if out, err := exec.Command(filepath.Join(binDir, "gendata"), "-out", bigData, "-agencies", "2", "-bets", "400000", "-seed", "2").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "gendata: %v\n%s", err, out)
		return 1
	}
	midData = filepath.Join(tmp, "mid")
	if out, err := exec.Command(filepath.Join(binDir, "gendata"), "-out", midData, "-agencies", "2", "-bets", "30000", "-seed", "3").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "gendata: %v\n%s", err, out)
		return 1
	}
	fmt.Fprintln(os.Stderr, datasetLine)
	if datasetZip != "" {
		officialDir = filepath.Join(tmp, "official")
		if out, err := exec.Command(filepath.Join(binDir, "gendata"), "-out", officialDir, "-zip", datasetZip).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "extract dataset: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

func needOfficial(t *testing.T) string {
	t.Helper()
	if officialDir == "" {
		t.Skipf("needs the course's dataset: %s", datasetLine)
	}
	return officialDir
}

// proc is a running binary whose output lines are kept and can be awaited.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process exited
	err  error         // exit status, valid after done

	mu    sync.Mutex
	lines []string
	grew  chan struct{} // closed and replaced on every new line
}

// start runs binary name with env added to a clean environment.
func start(t *testing.T, name string, dir string, env ...string) *proc {
	t.Helper()
	return startIn(t, nil, name, dir, env...)
}

// startIn is start with the binary run by wrap (ip netns exec NS: the
// binary is exec'd, so the process is the binary's and signals reach it).
// A name that is an absolute path is that binary (another build's).
func startIn(t *testing.T, wrap []string, name string, dir string, env ...string) *proc {
	t.Helper()
	path := name
	if !filepath.IsAbs(name) {
		path = filepath.Join(binDir, name)
	}
	argv := append(append([]string{}, wrap...), path)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "GORACE=atexit_sleep_ms=0 halt_on_error=1"}, env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	p := &proc{t: t, name: name, cmd: cmd, done: make(chan struct{}), grew: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.grew)
			p.grew = make(chan struct{})
			p.mu.Unlock()
		}
		io.Copy(io.Discard, out)
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("--- %s output:\n%s", name, p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// grep returns the lines matching re.
func (p *proc) grep(re string) []string {
	rx := regexp.MustCompile(re)
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, l := range p.lines {
		if rx.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

// waitLine waits for a line matching re, failing the test after d or when
// the process exits without printing it.
func (p *proc) waitLine(re string, d time.Duration) string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(d)
	seen := 0
	for {
		p.mu.Lock()
		for ; seen < len(p.lines); seen++ {
			if rx.MatchString(p.lines[seen]) {
				l := p.lines[seen]
				p.mu.Unlock()
				return l
			}
		}
		grew := p.grew
		p.mu.Unlock()
		select {
		case <-grew:
		case <-p.done:
			if len(p.grep(re)) > 0 {
				return p.grep(re)[0]
			}
			p.t.Fatalf("%s exited (%v) without a line matching %q", p.name, p.err, re)
		case <-deadline:
			p.t.Fatalf("%s printed no line matching %q within %s", p.name, re, d)
		}
	}
}

// wait waits for the process to exit, at most d, and returns its exit code.
func (p *proc) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.t.Fatalf("%s did not exit within %s", p.name, d)
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	p.t.Fatalf("%s: %v", p.name, p.err)
	return -1
}

func (p *proc) signal(sig syscall.Signal) {
	p.cmd.Process.Signal(sig)
}

// central is a server process with its address and store path.
type central struct {
	*proc
	addr   string
	dbPath string
}

// startCentral starts a server for agencies, with extra env, and waits until it listens.
func startCentral(t *testing.T, dbPath string, agencies int, env ...string) *central {
	t.Helper()
	// Port 0: the kernel picks a free port, and the listen line names it.
	env = append([]string{
		"SERVER_IP=127.0.0.1", "SERVER_PORT=0", fmt.Sprintf("AGENCIES=%d", agencies), "DB_PATH=" + dbPath,
	}, env...)
	p := start(t, "server", t.TempDir(), env...)
	return &central{proc: p, addr: listenAddr(p), dbPath: dbPath}
}

// listenAddr waits for a central's listen line and returns its address.
func listenAddr(p *proc) string {
	p.t.Helper()
	line := p.waitLine(`action: listen \| result: success \| direccion: `, 20*time.Second)
	return line[strings.LastIndex(line, " ")+1:]
}

// startAgency starts agency id against c with its CSV from dataDir.
func startAgency(t *testing.T, c *central, id int, dataDir string, env ...string) *proc {
	t.Helper()
	return startAgencyIn(t, nil, "agency", c, id, dataDir, env...)
}

// startAgencyIn is startAgency with binary name (startIn's) run by wrap.
func startAgencyIn(t *testing.T, wrap []string, name string, c *central, id int, dataDir string, env ...string) *proc {
	t.Helper()
	env = append([]string{
		fmt.Sprintf("CLI_ID=%d", id), "CLI_SERVER_ADDRESS=" + c.addr,
		"CLI_DATA_PATH=" + filepath.Join(dataDir, fmt.Sprintf("agency-%d.csv", id)),
		"CLI_RECONNECT_BACKOFF=50ms", "CLI_RECONNECT_MAXBACKOFF=500ms",
	}, env...)
	return startIn(t, wrap, name, t.TempDir(), env...)
}

// countZipRows is used to cross-check the extracted dataset.
func countZipRows(t *testing.T) int {
	z, err := zip.OpenReader(datasetZip)
	if err != nil {
		t.Skip(err)
	}
	defer z.Close()
	n := 0
	for _, f := range z.File {
		r, _ := f.Open()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			n++
		}
		r.Close()
	}
	return n
}

// waitAgencies waits for agencies[1..] to exit 0 and checks each one's
// winners against want (indexed by agency id).
func waitAgencies(t *testing.T, agencies []*proc, want map[int]int) {
	t.Helper()
	for i := 1; i < len(agencies); i++ {
		if code := agencies[i].wait(5 * time.Minute); code != 0 {
			t.Fatalf("agency %d exited %d", i, code)
		}
		line := agencies[i].waitLine(`action: consulta_ganadores \| result: success \| cant_ganadores: \d+$`, time.Second)
		if got := lastInt(line); got != want[i] {
			t.Errorf("agency %d: %d winners, want %d", i, got, want[i])
		}
	}
}
