// A stand-in for monis.app/mlog, which the Go module proxy here does not
// serve at any version.  It provides only what the Azure workload-identity
// webhook (v1.5.1, cmd/webhook and pkg/webhook) calls, and logs JSON lines to
// stderr.  It changes the peer's logging only, never what it admits.
module monis.app/mlog

go 1.23

require github.com/go-logr/logr v1.4.2
