package main

import (
	"context"
	"errors"
	"io"
)

// runBench is "parley bench ...": the load tool (internal/bench).
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return errors.New("bench: not built yet")
}
