package broker

import (
	"sync/atomic"
	"time"
)

// memoMaxBytes bounds the answers a ReadMemo keeps: their messages'
// encodings, together. A remembered answer keeps its messages alive even
// after they leave the cache, so a caller holding N memos pins at most N
// times this much beyond the cache budget. Larger answers are read every
// time, as without a memo.
const memoMaxBytes = 16 << 10

// ReadMemo remembers what the last Subscribe of one request found, so that
// repeating the same request while its channels have not changed costs
// neither a read nor an allocation: Subscribe returns the same Result
// (the same messages, cursor and Share, so layers above can reuse its
// encoding too), or, when it found nothing and the request may wait,
// parks at once on the channels it resolved before.
//
// A memo belongs to one request: use it only with a SubscribeRequest
// whose Channels, Cursor, FromNow and Until never change (Timeout may).
// It is safe for concurrent use; the zero value is empty.
//
// A remembered answer stays valid while every channel's Version is the
// one it was read at and its oldest message has not expired. The cursor
// it carries is the one of that read: positions of origins whose messages
// went only to other channels may lag, which is still a sound cursor
// (nothing it covers is skipped on these channels; on others a reader
// passing it gets messages sooner, never later). Once any origin's events
// had to be skipped (a replication loss, rare), whether a reader is
// truncated depends on more than its channels, and memos stay unused.
type ReadMemo struct {
	state atomic.Pointer[memoState]
}

// memoState is one remembered read; never modified once stored.
type memoState struct {
	res     Result // Share points at share
	refs    []*chanRef
	vers    []uint64 // each ref's Version at the read
	staleAt int64    // Unix ns when an expiry may change the answer; 0: never
	found   bool     // res answers at once, whatever the timeout
	share   Share
}

// readInfo is what a read tells a memo about itself.
type readInfo struct {
	vers    []uint64
	hidden  bool // a message after the cursor is not committed yet
	staleAt time.Time
}

func (in *readInfo) add(vers uint64, hidden bool, staleAt time.Time) {
	in.vers = append(in.vers, vers)
	in.hidden = in.hidden || hidden
	if !staleAt.IsZero() && (in.staleAt.IsZero() || staleAt.Before(in.staleAt)) {
		in.staleAt = staleAt
	}
}

// recall returns req's remembered read if it still holds at now.
func (b *Broker) recall(req *SubscribeRequest, now time.Time) *memoState {
	if req.Memo == nil || b.lossy.Load() || b.shut.Load() {
		return nil
	}
	st := req.Memo.state.Load()
	if st == nil || (st.staleAt != 0 && now.UnixNano() >= st.staleAt) {
		return nil
	}
	for i, r := range st.refs {
		if r.Version() != st.vers[i] {
			return nil
		}
	}
	return st
}

// remember stores what a read of refs found for req, if it can be reused:
// a complete read (no until, no "now" position, nothing uncommitted
// skipped), of channels that all exist, small enough to keep. It returns
// res with its Share set when stored.
func (b *Broker) remember(req *SubscribeRequest, refs []*chanRef, res Result, in *readInfo) Result {
	if req.Memo == nil || req.FromNow || req.Until != 0 || in.hidden || len(in.vers) != len(refs) || b.lossy.Load() {
		return res
	}
	size := 0
	for _, m := range res.Messages {
		size += len(m.JSON)
	}
	if size > memoMaxBytes {
		return res
	}
	st := &memoState{refs: refs, vers: in.vers, found: found(res)}
	if !in.staleAt.IsZero() {
		st.staleAt = in.staleAt.UnixNano()
	}
	res.Share = &st.share
	st.res = res
	req.Memo.state.Store(st)
	return res
}
