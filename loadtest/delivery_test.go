package loadtest

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestReceiptsAdd(t *testing.T) {
	r := &receipts{}
	r.startedAt.Store(1000)
	steps := []struct {
		p    Payload
		at   int64
		want receipt
	}{
		{Payload{Publisher: 0, Seq: 0, SentAt: 1000}, 1005, receiptFresh}, // sent at the start counts
		{Payload{Publisher: 0, Seq: 0, SentAt: 1000}, 1010, receiptDuplicate},
		{Payload{Publisher: 1, Seq: 0, SentAt: 1001}, 1020, receiptFresh}, // same seq, other publisher
		{Payload{Publisher: 0, Seq: 1, SentAt: 999}, 1030, receiptEarly},
		{Payload{Publisher: 0, Seq: 1, SentAt: 999}, 1031, receiptDuplicate},
		{Payload{Publisher: 0, Seq: 63, SentAt: 2000}, 2003, receiptFresh}, // bit 63 of word 0
		{Payload{Publisher: 0, Seq: 64, SentAt: 2000}, 2004, receiptFresh}, // word 1
		{Payload{Publisher: 0, Seq: MaxMessages - 1, SentAt: 2000}, 2005, receiptFresh},
		{Payload{Publisher: MaxPublishers - 1, Seq: MaxMessages - 1, SentAt: 2000}, 2006, receiptFresh},
	}
	for i, s := range steps {
		assert.Equal(t, s.want, r.add(s.p, s.at), "step %d", i)
	}
	assert.Equal(t, int64(6), r.fresh)
	assert.Equal(t, int64(2), r.duplicates)
	assert.Equal(t, int64(1), r.early)
	assert.Equal(t, []int64{5, 19, 3, 4, 5, 6}, r.trips, "trip times of fresh receipts only")
	assert.True(t, r.has(0, 64))
	assert.False(t, r.has(0, 65))
	assert.False(t, r.has(2, 0))
}

func TestTallyDelivery(t *testing.T) {
	rec := func(seq int64, sentAt int64, status int, chs ...string) PublishRecord {
		return PublishRecord{Seq: seq, SentAt: sentAt, Status: status, Channels: chs}
	}
	sub := func(start int64, chs []string, got ...Payload) subscriberTally {
		r := &receipts{}
		r.startedAt.Store(start)
		for _, p := range got {
			r.add(p, p.SentAt+1)
		}
		return subscriberTally{channels: chs, r: r}
	}
	p := func(seq, sentAt int64) Payload { return Payload{Seq: seq, SentAt: sentAt} }
	a, ab := []string{"a"}, []string{"a", "b"}

	tests := []struct {
		name string
		sent []PublishRecord
		subs []subscriberTally
		want Delivery
	}{
		{
			name: "everyone gets everything",
			sent: []PublishRecord{rec(0, 10, 201, "a"), rec(1, 20, 201, "a")},
			subs: []subscriberTally{sub(5, a, p(0, 10), p(1, 20)), sub(5, a, p(0, 10), p(1, 20))},
			want: Delivery{Published: 2, Expected: 4, Received: 4, RMP: 100},
		},
		{
			name: "a missing message",
			sent: []PublishRecord{rec(0, 10, 201, "a"), rec(1, 20, 201, "a")},
			subs: []subscriberTally{sub(5, a, p(0, 10)), sub(5, a, p(0, 10), p(1, 20))},
			want: Delivery{Published: 2, Expected: 4, Received: 3, Missing: 1, RMP: 75},
		},
		{
			name: "duplicates do not count as received",
			sent: []PublishRecord{rec(0, 10, 201, "a"), rec(1, 20, 201, "a")},
			subs: []subscriberTally{sub(5, a, p(0, 10), p(0, 10), p(0, 10))},
			want: Delivery{Published: 2, Expected: 2, Received: 1, Missing: 1, Duplicates: 2, RMP: 50},
		},
		{
			name: "messages sent before a subscriber started are not expected",
			sent: []PublishRecord{rec(0, 10, 201, "a"), rec(1, 20, 201, "a")},
			subs: []subscriberTally{sub(15, a, p(0, 10), p(1, 20)), sub(15, a, p(1, 20))},
			want: Delivery{Published: 2, Expected: 2, Received: 2, Early: 1, RMP: 100},
		},
		{
			name: "a message is expected only on the subscriber's channels, once for several",
			sent: []PublishRecord{rec(0, 10, 201, "b"), rec(1, 20, 201, "a", "b"), rec(2, 30, 201, "c")},
			subs: []subscriberTally{sub(5, a, p(1, 20)), sub(5, ab, p(0, 10), p(1, 20))},
			want: Delivery{Published: 3, Expected: 3, Received: 3, RMP: 100},
		},
		{
			name: "failed publishes are not expected; delivered anyway they are unexpected",
			sent: []PublishRecord{rec(0, 10, 201, "a"), rec(1, 20, 0, "a"), rec(2, 30, 503, "a")},
			subs: []subscriberTally{sub(5, a, p(0, 10), p(1, 20))},
			want: Delivery{Published: 1, PublishFailed: 2, Expected: 1, Received: 1, Unexpected: 1, RMP: 100},
		},
		{
			name: "nothing expected",
			sent: []PublishRecord{rec(0, 10, 201, "a")},
			subs: []subscriberTally{sub(50, a)},
			want: Delivery{Published: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tallyDelivery(tt.sent, tt.subs))
		})
	}
}
