package loadtest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsePerfStatCSV(t *testing.T) {
	out := []byte(`1234,,raw_syscalls:sys_enter,8000000,100.00,,
600,,syscalls:sys_enter_write,8000000,100.00,,
0,,syscalls:sys_enter_futex,8000000,100.00,,
<not counted>,,syscalls:sys_enter_readv,0,100.00,,
`)
	counts, err := parsePerfStatCSV(out)
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"all": 1234, "write": 600}, counts)

	_, err = parsePerfStatCSV([]byte("failed to attach\n"))
	assert.ErrorIs(t, err, ErrPerf)
}

func TestParseSockstatTCPMem(t *testing.T) {
	text := []byte("sockets: used 27\nTCP: inuse 9 orphan 0 tw 743 alloc 9 mem 12\nUDP: inuse 1 mem 3\n")
	n, err := parseSockstatTCPMem(text)
	require.NoError(t, err)
	assert.Equal(t, int64(12), n, "TCP's pages, not UDP's")
	_, err = parseSockstatTCPMem([]byte("UDP: inuse 1 mem 3\n"))
	assert.Error(t, err)
}

func TestParseProcIO(t *testing.T) {
	r, w, err := parseProcIO([]byte("rchar: 100\nwchar: 250\nsyscr: 3\nsyscw: 4\n"))
	require.NoError(t, err)
	assert.Equal(t, [2]int64{100, 250}, [2]int64{r, w})
	_, _, err = parseProcIO([]byte("syscr: 3\n"))
	assert.Error(t, err)
}

func TestParseProcStatUserSys(t *testing.T) {
	stat := []byte("42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 100 1000 10")
	u, s, err := parseProcStatUserSys(stat)
	require.NoError(t, err)
	assert.InDelta(t, 2.5, u, 1e-9)
	assert.InDelta(t, 0.75, s, 1e-9)
}
