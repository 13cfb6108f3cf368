//go:build !linux

package api

// osThreadLimits is empty where the OS's thread limits cannot be read:
// only -max-threads bounds the thread model there.
func osThreadLimits() []threadLimit { return nil }
