// Package reliability is wxlogin's reliability suite: tests that start real server
// processes on MariaDB, with the fake WeChat in the test process and a TCP fault
// proxy between the server and the database, and check that the service keeps
// working and loses nothing when the database goes away, WeChat misbehaves,
// instances die, load runs for a long time, or clients are hostile. Each test writes
// the figures it saw to test-artifacts/reliability/.
//
// The tests carry the build tag "reliability", so that plain `go test ./...` does not
// run them:
//
//	make reliability          # every scenario but the soak (a few minutes)
//	make soak                 # the soak, 30 minutes (SOAK=3m for a trial)
//
// See docs/reliability.md for the scenarios and the figures of a run.
package reliability
