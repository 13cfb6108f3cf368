//go:build !race

// The race detector changes what allocates: counts are checked without it.

package broker

import (
	"testing"
	"time"
)

// TestReadMemoHitAllocatesNothing: a repeated cached read answered from
// its memo allocates nothing (a read allocated the channel list, the
// snapshot, the answer's message slice and its cursor: 4 or more).
func TestReadMemoHitAllocatesNothing(t *testing.T) {
	b := newTestBroker(t, nil)
	publish(t, b, pub("one", "a"))
	req := SubscribeRequest{Channels: []string{"a"}, Memo: new(ReadMemo)}
	if _, _, err := b.Subscribe(req, nil); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if res, _, _ := b.Subscribe(req, nil); len(res.Messages) != 1 {
			t.Fatal("not answered")
		}
	})
	if allocs != 0 {
		t.Fatalf("a remembered read allocates %v times, want 0", allocs)
	}
}

// TestSnapshotIsSharedWhileNothingCommits: reading the committed
// positions of an unchanged broker allocates nothing.
func TestSnapshotIsSharedWhileNothingCommits(t *testing.T) {
	b := newTestBroker(t, nil)
	publish(t, b, pub("one", "a"))
	b.origins.snapshot()
	if allocs := testing.AllocsPerRun(100, func() { b.origins.snapshot() }); allocs != 0 {
		t.Fatalf("snapshot allocates %v times, want 0", allocs)
	}
}

// BenchmarkSubscribeCached is one cached read (one message, timeout 0):
// with its ReadMemo, and read afresh every time.
func BenchmarkSubscribeCached(b *testing.B) {
	for _, memo := range []bool{true, false} {
		name := "read"
		if memo {
			name = "memo"
		}
		b.Run(name, func(b *testing.B) {
			cfg := DefaultConfig()
			br, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer br.Close()
			if _, err := br.Publish(Publication{Channels: []string{"a"}, Data: []byte(`"x"`)}); err != nil {
				b.Fatal(err)
			}
			req := SubscribeRequest{Channels: []string{"a"}, Timeout: 0 * time.Second}
			if memo {
				req.Memo = new(ReadMemo)
			}
			b.ReportAllocs()
			for b.Loop() {
				if res, _, _ := br.Subscribe(req, nil); len(res.Messages) != 1 {
					b.Fatal("not answered")
				}
			}
		})
	}
}

// BenchmarkSubscribePark is a re-poll that waits: the request parks on
// its channel (and is withdrawn, as a client that left would be). With a
// memo, a query many subscribers share after a fan-out skips reading
// what it read before.
func BenchmarkSubscribePark(b *testing.B) {
	for _, memo := range []bool{true, false} {
		name := "read"
		if memo {
			name = "memo"
		}
		b.Run(name, func(b *testing.B) {
			br, err := New(DefaultConfig())
			if err != nil {
				b.Fatal(err)
			}
			defer br.Close()
			if _, err := br.Publish(Publication{Channels: []string{"a"}, Data: []byte(`"x"`)}); err != nil {
				b.Fatal(err)
			}
			res, _, _ := br.Subscribe(SubscribeRequest{Channels: []string{"a"}}, nil)
			req := SubscribeRequest{Channels: []string{"a"}, Cursor: res.Cursor, Timeout: time.Minute}
			if memo {
				req.Memo = new(ReadMemo)
			}
			deliver := func(Result) {}
			b.ReportAllocs()
			for b.Loop() {
				_, sub, err := br.Subscribe(req, deliver)
				if err != nil || sub == nil {
					b.Fatal("not parked", err)
				}
				sub.Cancel()
			}
		})
	}
}
