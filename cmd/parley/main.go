// Command parley is a self-hosted web chat server: one binary serving the
// web app, the REST and WebSocket API, on embedded SQLite by default.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		// The first signal starts a graceful shutdown; a second one kills.
		// The signals get their default action back before the shutdown
		// begins, so that no second signal falls in between.
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		cancel()
	}()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "parley: %v\n", err)
		os.Exit(1)
	}
}
