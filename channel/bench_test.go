package channel

import (
	"encoding/json"
	"testing"
	"time"
)

func filled(b *testing.B, n int) *Channel {
	c, err := New("c", Config{MaxMessages: n}, time.Hour, t0, nil)
	if err != nil {
		b.Fatal(err)
	}
	data := json.RawMessage(`{"text":"a typical small chat message"}`)
	for i := range n {
		m := NewMessage(1, uint64(i+1), NewTimestamp(t0.UnixMilli()+int64(i), 0), []string{"c"}, data)
		if _, err := c.Insert(m, t0); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

// BenchmarkRangeQuery10K reads from a channel holding 10,000 messages: the
// tail a reconnecting subscriber asks for, and a full page of 1,000.
func BenchmarkRangeQuery10K(b *testing.B) {
	c := filled(b, 10_000)
	vis := Vector{{1, ^Timestamp(0)}}
	for _, bc := range []struct {
		name  string
		after Timestamp
		limit int
	}{
		{"tail10", NewTimestamp(t0.UnixMilli()+9_989, 0), 1000},
		{"page1000", NewTimestamp(t0.UnixMilli()+4_999, 0), 1000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q := Query{After: Vector{{1, bc.after}}, Visible: vis, Limit: bc.limit}
			buf := make([]*Message, 0, bc.limit)
			b.ReportAllocs()
			for b.Loop() {
				res := c.Read(q, t0, buf)
				if len(res.Messages) == 0 {
					b.Fatal("empty read")
				}
			}
		})
	}
}

// BenchmarkInsert measures caching one message into a full channel (one
// insert plus one eviction).
func BenchmarkInsert(b *testing.B) {
	c := filled(b, 1000)
	data := json.RawMessage(`{"text":"x"}`)
	seq := uint64(1000)
	b.ReportAllocs()
	for b.Loop() {
		seq++
		m := &Message{Origin: 1, Seq: seq, TS: NewTimestamp(t0.UnixMilli()+int64(seq), 0), Data: data}
		if _, err := c.Insert(m, t0); err != nil {
			b.Fatal(err)
		}
	}
}
