//go:build linux && race

package evhttp

import (
	"runtime"
	"unsafe"
)

// Under the race detector, the raw reads and writes tell it what the
// kernel touched, as unix.Read and unix.Write do: a buffer reused while a
// write of it is in flight is then reported.

func raceReadBuf(b []byte, n int) {
	if n > 0 {
		runtime.RaceReadRange(unsafe.Pointer(&b[0]), n)
	}
}

func raceWriteBuf(b []byte, n int) {
	if n > 0 {
		runtime.RaceWriteRange(unsafe.Pointer(&b[0]), n)
	}
}
