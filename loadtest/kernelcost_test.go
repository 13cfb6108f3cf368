package loadtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/internal/testbed"
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

func TestParseSockstatTCP(t *testing.T) {
	text := []byte("sockets: used 27\nTCP: inuse 9 orphan 0 tw 743 alloc 9 mem 12\nUDP: inuse 1 mem 3\n")
	pages, inuse, err := parseSockstatTCP(text)
	require.NoError(t, err)
	assert.Equal(t, int64(12), pages, "TCP's pages, not UDP's")
	assert.Equal(t, int64(9), inuse)
	_, _, err = parseSockstatTCP([]byte("UDP: inuse 1 mem 3\n"))
	assert.Error(t, err)
	_, _, err = parseSockstatTCP([]byte("TCP: inuse 9\n"))
	assert.Error(t, err)
}

func TestParseSlabinfo(t *testing.T) {
	text := []byte(`slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
TCPv6                 26     26   2496   13    8 : tunables    0    0    0 : slabdata      2      2      0
TCP                17139  17199   2368   13    8 : tunables    0    0    0 : slabdata   1323   1323      0
sock_inode_cache   13414  13414    832   19    4 : tunables    0    0    0 : slabdata    706    706      0
dentry            207198 209391    192   21    1 : tunables    0    0    0 : slabdata   9971   9971      0
`)
	assert.Equal(t, int64(17139*2368+13414*832), parseSlabinfo(text, socketSlabCaches), "TCPv6 and dentry are not counted")
}

func TestReadKernelMemory(t *testing.T) {
	k, err := readKernelMemory()
	require.NoError(t, err)
	assert.Positive(t, k.Slab)
	assert.GreaterOrEqual(t, k.TCPSockets, int64(0))
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

// TestPerfRecordWritesProfile samples a busy process through startPerf:
// the profile must hold samples. perf record gives up with an empty file
// when its control pipe is closed while it runs.
func TestPerfRecordWritesProfile(t *testing.T) {
	testbed.PerfOrSkip(t)
	busy := exec.Command("yes")
	require.NoError(t, busy.Start())
	defer func() { _ = busy.Process.Kill(); _ = busy.Wait() }()
	path := filepath.Join(t.TempDir(), "busy.perf.data")
	p, err := startPerf([]string{"record", "-F", "999", "-o", path}, []int{busy.Process.Pid})
	require.NoError(t, err)
	time.Sleep(500 * time.Millisecond) // something to sample; the outcome is checked either way
	out, err := p.stop()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "samples", "perf record wrote its profile")
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Greater(t, st.Size(), int64(8<<10), "%s", out)
}
