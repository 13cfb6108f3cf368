package broker

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func benchBroker(b *testing.B, mod func(*Config)) *Broker {
	cfg := DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	br, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(br.Close)
	return br
}

var benchData = json.RawMessage(`{"text":"a typical small chat message","user":"ann"}`)

// BenchmarkPublish publishes one message to 1 and to 10 channels, with no
// subscriber waiting: the cost of stamping, encoding and caching.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("channels=%d", n), func(b *testing.B) {
			br := benchBroker(b, nil)
			p := Publication{Channels: names("c", n), Data: benchData}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := br.Publish(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBatchSubscribeMerge16 reads 16 channels of 100 messages each,
// where every message is in 4 of them, merged and de-duplicated: 400
// distinct messages per answer.
func BenchmarkBatchSubscribeMerge16(b *testing.B) {
	br := benchBroker(b, nil)
	chs := names("c", 16)
	for i := range 400 {
		p := Publication{Channels: []string{chs[i%16], chs[(i+1)%16], chs[(i+2)%16], chs[(i+3)%16]}, Data: benchData}
		if _, err := br.Publish(p); err != nil {
			b.Fatal(err)
		}
	}
	req := SubscribeRequest{Channels: chs}
	b.ReportAllocs()
	for b.Loop() {
		res, _, err := br.Subscribe(req, nil)
		if err != nil || len(res.Messages) != 400 {
			b.Fatalf("got %d messages, err %v", len(res.Messages), err)
		}
	}
}

// BenchmarkWake10000 publishes one message to a channel with 10,000
// subscribers waiting: claiming all of them and handing each its answer
// (the deliver callback here only counts). Parking them is set-up, not
// timed.
func BenchmarkWake10000(b *testing.B) {
	const waiters = 10_000
	br := benchBroker(b, nil)
	var delivered atomic.Int64
	deliver := func(Result) { delivered.Add(1) }
	p := Publication{Channels: []string{"hot"}, Data: benchData}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		req := SubscribeRequest{Channels: []string{"hot"}, FromNow: true, Timeout: time.Hour}
		for range waiters {
			if _, s, err := br.Subscribe(req, deliver); err != nil || s == nil {
				b.Fatal("subscriber did not park", err)
			}
		}
		delivered.Store(0)
		b.StartTimer()
		if _, err := br.Publish(p); err != nil {
			b.Fatal(err)
		}
		if delivered.Load() != waiters {
			b.Fatalf("woke %d of %d", delivered.Load(), waiters)
		}
	}
}

// BenchmarkBatchPublish1000x64 publishes the largest batch the default
// limits allow: 1,000 publications, each to 64 channels (distinct per
// publication, 64,000 channels in all). Its channel de-duplication was
// quadratic (slices.Contains over every name seen so far): 4.4 s a batch.
func BenchmarkBatchPublish1000x64(b *testing.B) {
	br := benchBroker(b, func(c *Config) { c.MaxChannels = 0 })
	pubs := make([]Publication, 1000)
	for i := range pubs {
		pubs[i] = Publication{Channels: names(fmt.Sprintf("p%d-", i), 64), Data: benchData}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Publish(pubs...); err != nil {
			b.Fatal(err)
		}
	}
}
