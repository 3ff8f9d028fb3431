// Package e2e holds the end-to-end tests: they build the real server and
// agency binaries and run them as processes on 127.0.0.1.
package e2e
