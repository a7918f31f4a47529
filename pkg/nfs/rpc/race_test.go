//go:build race

package rpc

// raceEnabled is set under -race, where sync.Pool drops items on purpose,
// so allocation counts are meaningless.
const raceEnabled = true
