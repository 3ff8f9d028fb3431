// Package logformat sets up go-logging with the course's line format, which
// both programs share and which tests and users grep:
//
//	2026-11-26 18:13:00 INFO     action: apuesta_recibida | result: success | cantidad: 212
package logformat

import (
	"io"

	"github.com/op/go-logging"
)

// Format is the go-logging format of every line.
const Format = `%{time:2006-01-02 15:04:05} %{level:-8s} %{message}`

// Setup sends every logger's lines at level or above to w.
func Setup(w io.Writer, level logging.Level) {
	backend := logging.NewLogBackend(w, "", 0)
	leveled := logging.AddModuleLevel(logging.NewBackendFormatter(backend, logging.MustStringFormatter(Format)))
	leveled.SetLevel(level, "")
	logging.SetBackend(leveled)
}
