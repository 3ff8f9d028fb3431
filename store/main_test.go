package store_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/store"
)

// checkEnv names the file a run of this test binary checks, as the
// server's check-store command does, instead of running the tests.
const checkEnv = "TP0_STORE_TEST_CHECK"

func TestMain(m *testing.M) {
	if path := os.Getenv(checkEnv); path != "" {
		rep, err := store.CheckFile(path)
		if err != nil {
			fmt.Println("check-store:", err)
		} else {
			fmt.Printf("ok: %d bets\n", rep.Bets)
		}
		os.Exit(store.ChildExit(err))
	}
	os.Exit(m.Run())
}

// childCheck checks a file in a run of this test binary, as a central
// checks its store in a process of its own.
var childCheck = store.InChild{Bound: 5 * time.Second, Command: func(ctx context.Context, path string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), checkEnv+"="+path)
	return cmd
}}.Check
