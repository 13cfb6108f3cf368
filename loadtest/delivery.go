package loadtest

import (
	"slices"
	"sync/atomic"
)

// Delivery is the received message percentage (RMP) and how it is made
// up. A subscriber is expected to receive every message accepted by the
// server (publish answered 201) on one of its channels whose publisher
// timestamp is at or after the subscriber started: the moment it had the
// answer to its first poll (since=now), which fixed its position. Later
// messages were committed after that position, so the cursor protocol
// must deliver every one of them.
type Delivery struct {
	// Published is publications the server accepted.
	Published int `json:"published"`
	// PublishFailed is publish requests that failed or got a status other
	// than 201. Their messages are not expected.
	PublishFailed int `json:"publish_failed"`
	// Expected sums, over subscribers, the messages each should receive.
	Expected int64 `json:"expected"`
	// Received is how many of the expected (subscriber, message) pairs
	// arrived at least once.
	Received int64 `json:"received"`
	// Missing is Expected - Received.
	Missing int64 `json:"missing"`
	// Duplicates counts receipts of a message the subscriber already had.
	// The cursor protocol promises none; they do not count in Received.
	Duplicates int64 `json:"duplicates"`
	// Early counts messages received that were sent before the subscriber
	// started: not expected, so outside RMP either way.
	Early int64 `json:"early"`
	// Unexpected counts messages received, sent after the subscriber
	// started, that no accepted publication explains: typically a publish
	// that the server committed but whose answer the publisher lost.
	Unexpected int64 `json:"unexpected"`
	// Foreign counts messages whose data is not a load-test payload.
	Foreign int64 `json:"foreign"`
	// Truncated counts answers that said "truncated": messages were
	// evicted before the subscriber asked for them.
	Truncated int64 `json:"truncated_answers"`
	// RMP is 100 * Received / Expected, in percent; 0 when nothing was
	// expected (see Expected).
	RMP float64 `json:"rmp_percent"`
}

// receipts is what one subscriber received. It is owned by the
// subscriber's goroutine until the population stops.
type receipts struct {
	// startedAt is when the subscriber's position was fixed, Unix ns; 0
	// until then. Atomic: the run reads it while the subscriber runs.
	startedAt atomic.Int64
	// seen is a sparse bitset of (publisher, seq), so memory follows what
	// was received, not how large a sequence number is.
	seen map[uint64]uint64
	// fresh counts distinct messages sent at or after startedAt.
	fresh                      int64
	duplicates, early, foreign int64
	truncated                  int64
	trips                      []int64 // ns, first receipts of fresh messages
}

func seenKey(p Payload) (key uint64, bit uint64) {
	return uint64(p.Publisher)<<40 | uint64(p.Seq)>>6, 1 << (uint64(p.Seq) & 63)
}

// has reports whether the message was received.
func (r *receipts) has(publisher int, seq int64) bool {
	k, b := seenKey(Payload{Publisher: publisher, Seq: seq})
	return r.seen[k]&b != 0
}

// receipt says how a received message was counted.
type receipt int

const (
	// receiptFresh: first receipt of a message sent after the subscriber
	// started; it counts towards Received if the publish was accepted.
	receiptFresh receipt = iota
	// receiptDuplicate: the subscriber already had it.
	receiptDuplicate
	// receiptEarly: first receipt of a message sent before the subscriber
	// started.
	receiptEarly
)

// add records a message received at recvAt (Unix ns).
func (r *receipts) add(p Payload, recvAt int64) receipt {
	k, b := seenKey(p)
	if r.seen == nil {
		r.seen = map[uint64]uint64{}
	}
	if r.seen[k]&b != 0 {
		r.duplicates++
		return receiptDuplicate
	}
	r.seen[k] |= b
	if p.SentAt < r.startedAt.Load() {
		r.early++
		return receiptEarly
	}
	r.fresh++
	r.trips = append(r.trips, recvAt-p.SentAt)
	return receiptFresh
}

// subscriberTally is one subscriber's part of a delivery tally.
type subscriberTally struct {
	channels []string
	r        *receipts
}

// tallyDelivery computes Delivery from what the publishers sent and what
// each subscriber received.
func tallyDelivery(sent []PublishRecord, subs []subscriberTally) Delivery {
	var d Delivery
	for _, rec := range sent {
		if rec.OK() {
			d.Published++
		} else {
			d.PublishFailed++
		}
	}
	for _, s := range subs {
		var expected, received int64
		for _, rec := range sent {
			if !rec.OK() || rec.SentAt < s.r.startedAt.Load() || !overlaps(rec.Channels, s.channels) {
				continue
			}
			expected++
			if s.r.has(rec.Publisher, rec.Seq) {
				received++
			}
		}
		d.Expected += expected
		d.Received += received
		d.Unexpected += s.r.fresh - received
		d.Duplicates += s.r.duplicates
		d.Early += s.r.early
		d.Foreign += s.r.foreign
		d.Truncated += s.r.truncated
	}
	d.Missing = d.Expected - d.Received
	if d.Expected > 0 {
		d.RMP = 100 * float64(d.Received) / float64(d.Expected)
	}
	return d
}

func overlaps(a, b []string) bool {
	return slices.ContainsFunc(a, func(x string) bool { return slices.Contains(b, x) })
}
