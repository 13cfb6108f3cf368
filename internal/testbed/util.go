package testbed

import (
	"context"
	"os"
	"path/filepath"
	"time"
)

// pause waits d or until ctx ends; it reports whether ctx is still live.
func pause(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

// clip keeps error messages short when a child prints a lot.
func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

// writeConfig writes a child's configuration file into dir, which it
// removes if that fails, and returns the file's path.
func writeConfig(dir, name string, text []byte) (string, error) {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, text, 0o644); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return path, nil
}
