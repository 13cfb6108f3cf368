//go:build linux

package evhttp

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRegistryKeepsConnectionsAcrossGrowthAndReuse(t *testing.T) {
	var r registry[int]
	conns := make([]*Conn[int], 20000) // past several growths, small and large
	keys := make([]uint64, len(conns))
	for i := range conns {
		conns[i] = &Conn[int]{}
		keys[i] = r.add(conns[i])
	}
	require.Equal(t, len(conns), r.len())
	for i, k := range keys {
		require.Same(t, conns[i], r.get(k), "connection %d", i)
	}
	r.remove(keys[7])
	assert.Nil(t, r.get(keys[7]), "a removed connection's key finds nothing")
	tenant := &Conn[int]{}
	k := r.add(tenant)
	assert.Equal(t, uint32(keys[7]), uint32(k), "the freed slot is reused")
	assert.Nil(t, r.get(keys[7]), "a stale key never reaches the slot's new tenant")
	assert.Same(t, tenant, r.get(k))
	r.remove(keys[7]) // stale: leaves the tenant alone
	assert.Same(t, tenant, r.get(k))
	assert.Len(t, r.all(), len(conns))
}

// The poller's lock-free get, racing add, remove and growth: a stale key
// yields nothing or its own (closed) connection, never a slot's new
// tenant, and a live key always yields its connection.
func TestRegistryGetWithoutLockRacesWriters(t *testing.T) {
	var r registry[int]
	old := &Conn[int]{}
	oldKey := r.add(old)
	live := &Conn[int]{}
	liveKey := r.add(live)
	var stop atomic.Bool
	var wrong atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			if c := r.get(oldKey); c != nil && c != old {
				wrong.Add(1)
			}
			if r.get(liveKey) != live {
				wrong.Add(1)
			}
		}
	})
	r.remove(oldKey)
	for i := range 3000 { // reuse the freed slot and grow the table meanwhile
		k := r.add(&Conn[int]{})
		if i%2 == 0 {
			r.remove(k)
		}
	}
	stop.Store(true)
	wg.Wait()
	assert.Zero(t, wrong.Load())
}
