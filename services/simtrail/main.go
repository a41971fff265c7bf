// Command simtrail runs simtrail: the whole system on an embedded default
// (`simtrail dev`, what `make run` starts), each service alone against an
// external NATS, and the tools around the event log (send, tail).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := newRootCmd().ExecuteContext(ctx)
	if err = errors.Join(err, finishProfiles()); err != nil {
		fmt.Fprintln(os.Stderr, "simtrail:", err)
		os.Exit(1)
	}
}
