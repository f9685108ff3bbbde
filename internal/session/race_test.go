//go:build race

package session

// raceEnabled: under the race detector sync.Pool drops buffers at random,
// so allocation counts say nothing about the code.
const raceEnabled = true
