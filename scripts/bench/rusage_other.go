//go:build !unix

package main

import (
	"os"
	"time"
)

// maxRSS is unknown here: the bench reports 0 (its figures are for Linux).
func maxRSS(*os.ProcessState) int64 { return 0 }

// selfCPU is unknown here.
func selfCPU() time.Duration { return 0 }
