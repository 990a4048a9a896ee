// Package ui holds Parley's web app, embedded in the binary.
package ui

import "embed"

//go:embed all:dist
var FS embed.FS
