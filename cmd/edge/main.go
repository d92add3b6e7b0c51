// Command edge is the anytime dense-prediction runtime: it runs ADP-C bundles
// frame by frame, halting each frame where its deadline, energy, power and
// heat allow, and publishes results to a fleet.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go onSignals(sigs, cancel, os.Exit)
	if err := newApp().RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "edge:", err)
		os.Exit(1)
	}
}

// onSignals cancels the run on the first signal, so it stops cleanly, and
// exits at once on the second (status 128 + the signal's number), so the
// process can always be stopped, whatever the first shutdown waits on.
func onSignals(sigs <-chan os.Signal, cancel context.CancelFunc, exit func(code int)) {
	<-sigs
	cancel()
	s := <-sigs
	slog.Warn("second signal: exiting at once", "signal", s.String())
	code := 1
	if n, ok := s.(syscall.Signal); ok {
		code = 128 + int(n)
	}
	exit(code)
}
