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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "parley: %v\n", err)
		os.Exit(1)
	}
}
