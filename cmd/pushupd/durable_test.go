package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/store"
)

func TestDurableFlags(t *testing.T) {
	c, err := parseConfig(nil, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	assert.Nil(t, c.Durable.Store, "no -data-dir: memory only")
	assert.Equal(t, defaultDrainSpread, c.API.DrainSpread)

	c, err = parseConfig([]string{"-data-dir", "/var/lib/pushup", "-drain-spread", "2s"}, env(map[string]string{"PUSHUP_FSYNC": "always"}), &bytes.Buffer{})
	require.NoError(t, err)
	require.NotNil(t, c.Durable.Store)
	assert.Equal(t, "/var/lib/pushup", c.Durable.Store.Dir)
	assert.Equal(t, store.FsyncAlways, c.Durable.Store.Fsync)
	assert.Equal(t, 2*time.Second, c.API.DrainSpread)

	c, err = parseConfig([]string{"-shutdown-timeout", "4s"}, env(nil), &bytes.Buffer{})
	require.NoError(t, err, "a short shutdown timeout alone still starts")
	assert.Equal(t, 2*time.Second, c.API.DrainSpread, "the default spread shrinks to half of it")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-fsync", "sometimes"}, "-fsync"},
		{[]string{"-drain-spread", "-1s"}, "-drain-spread"},
		{[]string{"-drain-spread", "20s", "-shutdown-timeout", "15s"}, "shorter than -shutdown-timeout"},
	} {
		_, err := parseConfig(tc.args, env(nil), &bytes.Buffer{})
		require.Error(t, err, "%v", tc.args)
		assert.Contains(t, err.Error(), tc.want)
	}
}
