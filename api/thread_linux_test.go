//go:build linux

package api

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseLoadavgThreads(t *testing.T) {
	n, err := parseLoadavgThreads([]byte("0.16 0.93 1.45 1/84 22812\n"))
	require.NoError(t, err)
	assert.Equal(t, 84, n)
	_, err = parseLoadavgThreads([]byte("0.16 0.93 1.45"))
	assert.Error(t, err)
	_, err = parseLoadavgThreads([]byte("0.16 0.93 1.45 184 1"))
	assert.Error(t, err)
}

func TestPidsCgroupDirFrom(t *testing.T) {
	v1 := "9:name=systemd:/\n8:pids:/user.slice\n4:memory:/x\n0::/\n"
	assert.Equal(t, "/sys/fs/cgroup/pids/user.slice", pidsCgroupDirFrom(v1, "/sys/fs/cgroup"))
	v2 := "0::/system.slice/pushupd.service\n"
	assert.Equal(t, "/sys/fs/cgroup/system.slice/pushupd.service", pidsCgroupDirFrom(v2, "/sys/fs/cgroup"))
	assert.Empty(t, pidsCgroupDirFrom("", "/sys/fs/cgroup"))
}
