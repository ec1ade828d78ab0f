//go:build race

package gateway

// raceEnabled says the race detector is on: it makes sync.Pool drop items on purpose, so allocation
// counts are only asserted without it.
const raceEnabled = true
