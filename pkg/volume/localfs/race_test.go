//go:build race

package localfs

// raceEnabled is set under -race, whose instrumentation makes values escape
// to the heap, so allocation counts mean nothing there.
const raceEnabled = true
