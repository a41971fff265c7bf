// Command simtrail runs simtrail: the whole system on an embedded default
// (`simtrail dev`, what `make run` starts), each service alone against an
// external NATS, and the tools around the event log (send, tail).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// defaultGCPercent replaces Go's GOGC=100 unless GOGC is set. A read
// model's live heap is small (about 10 MB while serving) and every query
// allocates, so at 100 a collection ran every ~90 ms and a 31-day usage
// query's p99 under 50 clients was ~0.5 ms worse; the heap it costs is
// measured by make bench (docs/performance.md, docs/operations.md).
const defaultGCPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "simtrail:", err)
		os.Exit(1)
	}
}
