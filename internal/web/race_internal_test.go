//go:build race

package web

// raceEnabled is whether the tests run under the race detector, whose
// sync.Pool drops items at random: counts of allocations mean nothing
// there.
const raceEnabled = true
