//go:build !linux

package bench

import "time"

// Without Linux's per-thread CPU clocks and /proc, CPU and RSS figures
// read as zero and the report says "n/a".
func threadCPU() time.Duration   { return 0 }
func processCPU() time.Duration  { return 0 }
func rssBytes() int64            { return 0 }
func fdLimit() int               { return 1024 }
func cpuModel() string           { return "" }
func childCPU(int) time.Duration { return 0 }

// Elsewhere 127.0.0.0/8 beyond 127.0.0.1 is usually not configured.
const sourceSpread = false
