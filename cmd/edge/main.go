// Command edge is the anytime dense-prediction runtime: it runs ADP-C bundles
// frame by frame, halting each frame where its deadline, energy, power and
// heat allow, and publishes results to a fleet.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newApp().RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "edge:", err)
		stop()
		os.Exit(1)
	}
}
