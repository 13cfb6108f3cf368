//go:build !race

package broker

import (
	"runtime"
	"testing"
	"time"
)

// bytesPerRun is testing.AllocsPerRun for bytes: the average heap bytes
// one call of f allocates.
func bytesPerRun(runs int, f func()) float64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	f() // warm up
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return float64(after.TotalAlloc-before.TotalAlloc) / float64(runs)
}

// TestRecycledParkSparesTheRecord: a re-poll that parks and is answered
// by a publication costs its Subscription record (160 bytes) only
// without recycling; with it, only a 16-byte Ticket.
func TestRecycledParkSparesTheRecord(t *testing.T) {
	cycle := func(recycle bool) float64 {
		b := newTestBroker(t, nil)
		cur := Cursor{Pos: b.origins.snapshot()}
		data := []byte(`"x"`)
		var last Result
		deliver := func(r Result) { last = r }
		req := SubscribeRequest{Channels: []string{"a"}, Timeout: time.Minute}
		return bytesPerRun(200, func() {
			req.Cursor = cur
			var parked bool
			if recycle {
				_, tk, _ := b.SubscribeRecycled(req, deliver)
				parked = tk != nil
			} else {
				_, s, _ := b.Subscribe(req, deliver)
				parked = s != nil
			}
			if !parked {
				t.Fatal("not parked")
			}
			if _, err := b.Publish(Publication{Channels: []string{"a"}, Data: data}); err != nil {
				t.Fatal(err)
			}
			cur = last.Cursor
		})
	}
	plain, recycled := cycle(false), cycle(true)
	t.Logf("bytes per park and answer: %.0f plain, %.0f recycled", plain, recycled)
	if plain-recycled < 128 {
		t.Fatalf("recycling spares %.0f bytes per park, want at least 128", plain-recycled)
	}
}

// BenchmarkFanoutRepark is the broker's part of a fan-out: 1,000 waits on
// one channel, a publication answers them all, and each parks again from
// its new cursor (with the query's ReadMemo, as the event loop's re-polls
// do). Per op: one delivery and its re-park. "recycled" is
// SubscribeRecycled, as the event loop parks.
func BenchmarkFanoutRepark(b *testing.B) {
	const n = 1000
	for _, recycle := range []bool{false, true} {
		name := "plain"
		if recycle {
			name = "recycled"
		}
		b.Run(name, func(b *testing.B) {
			br, err := New(DefaultConfig())
			if err != nil {
				b.Fatal(err)
			}
			defer br.Close()
			var cur Cursor
			deliver := func(r Result) { cur = r.Cursor }
			memo := new(ReadMemo)
			park := func() {
				req := SubscribeRequest{Channels: []string{"a"}, Cursor: cur, Timeout: time.Minute, Memo: memo}
				for range n {
					var parked bool
					if recycle {
						_, tk, _ := br.SubscribeRecycled(req, deliver)
						parked = tk != nil
					} else {
						_, s, _ := br.Subscribe(req, deliver)
						parked = s != nil
					}
					if !parked {
						b.Fatal("not parked")
					}
				}
			}
			cur = Cursor{Pos: br.origins.snapshot()}
			memo = new(ReadMemo)
			park()
			pub := Publication{Channels: []string{"a"}, Data: []byte(`"x"`)}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += n {
				if _, err := br.Publish(pub); err != nil {
					b.Fatal(err)
				}
				memo = new(ReadMemo) // a new query: the new cursor
				park()
			}
		})
	}
}
