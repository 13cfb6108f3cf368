//go:build linux

package api

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRingKeepsOrderAcrossWrapAndGrowth(t *testing.T) {
	var r ring
	next, want := 0, 0
	push := func(n int) {
		for range n {
			r.push(job{events: uint32(next)})
			next++
		}
	}
	pop := func(n int) {
		for _, j := range r.pop(nil, n) {
			assert.EqualValues(t, want, j.events)
			want++
		}
	}
	push(200)
	pop(150)  // head moves forward
	push(300) // wraps around, then grows while wrapped
	assert.Equal(t, 350, r.len())
	pop(1000)
	assert.Equal(t, 0, r.len())
	assert.Equal(t, next, want)
	push(maxIdleRing + 1) // a huge burst...
	pop(maxIdleRing + 1)
	assert.Nil(t, r.buf, "...does not keep its array")
}

func TestRingTail(t *testing.T) {
	var r ring
	assert.Nil(t, r.tail())
	for i := range 300 { // past the first growth
		r.push(job{events: uint32(i)})
		assert.EqualValues(t, i, r.tail().events)
	}
	r.tail().events = 7
	r.pop(nil, 299)
	assert.EqualValues(t, 7, r.tail().events, "the tail can be extended in place")
}
