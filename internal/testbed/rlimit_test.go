package testbed

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckFileBudget(t *testing.T) {
	tests := []struct {
		name  string
		conns int
		limit uint64
		ok    bool
		msg   []string // in the error
	}{
		{name: "15,000 fit under 20,000", conns: 15_000, limit: 20_000, ok: true},
		{name: "exactly the budget", conns: 20_000 - FileMargin, limit: 20_000, ok: true},
		{name: "one over", conns: 20_000 - FileMargin + 1, limit: 20_000,
			msg: []string{"asked for 19873 connections", "allows 20000 open files", "at most 19872 fit"}},
		{name: "far over", conns: 30_000, limit: 20_000, msg: []string{"asked for 30000", "allows 20000"}},
		{name: "a tiny limit", conns: 1, limit: 64, msg: []string{"at most 0 fit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckFileBudget("proc", tt.conns, tt.limit)
			if tt.ok {
				assert.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrTooManyConnections)
			for _, m := range tt.msg {
				assert.Contains(t, err.Error(), m)
			}
		})
	}
}

func TestFileLimits(t *testing.T) {
	limit, err := RaiseFileLimit()
	require.NoError(t, err)
	own, err := ProcessFileLimit(os.Getpid())
	require.NoError(t, err)
	assert.Equal(t, limit, own, "/proc agrees with getrlimit")
	_, err = ProcessFileLimit(-1)
	assert.Error(t, err)
}
