package api

import (
	"hash/maphash"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pushuphq/pushup/broker"
)

// pollMemo remembers the subscribe queries the event loop's fast path
// sees repeated, each with its parsed request, the broker's ReadMemo of
// it and its encoded answers. A repeated cached read (the same query
// while its channels are unchanged) is then answered with bytes built
// before: no parsing, no read, no encoding, no allocation. A re-poll
// whose query many subscribers share (the cursor one publication gave
// them all) is parsed once and parks without reading first.
//
// It is a fixed table, direct-mapped by a hash of the raw query; a query
// is admitted on its second consecutive sighting in its slot, so a
// stream of distinct queries costs a hash per request and nothing more.
// What it holds is bounded: pollMemoSlots requests, each pinning at
// most broker's 16 KiB of remembered messages, and encoded answers
// counted in bytes up to pollMemoMaxBytes. Safe for concurrent use.
//
// Only the request decides the answer's body, never who asks: whether to
// answer at all (tokens, limits) is decided before the memo is consulted,
// and the per-request parts of the head (the CORS origin, which comes
// from a fixed list, and keep-alive) are variants of their own.
type pollMemo struct {
	seed  maphash.Seed
	slots [pollMemoSlots]pollSlot
	bytes atomic.Int64 // held in answerSets
}

const (
	// pollMemoSlots: enough for the queries repeated at any one time
	// (a fan-out's re-polls share one); 4 KiB of table.
	pollMemoSlots = 256
	// pollMemoMaxBytes bounds the encoded answers held, over all slots.
	pollMemoMaxBytes = 4 << 20
	// pollMemoVariants bounds the head variants kept per answer: CORS
	// origins times keep-alive or close.
	pollMemoVariants = 4
)

type pollSlot struct {
	entry atomic.Pointer[pollEntry]
	seen  atomic.Uint64 // hash of the last query that missed here
}

// pollEntry is one remembered query. req.Memo points at memo.
type pollEntry struct {
	query   string
	req     broker.SubscribeRequest
	memo    broker.ReadMemo
	answers atomic.Pointer[answerSet]
}

// answerSet holds the encodings of one remembered answer (share), made
// within one second (their Date header). Never modified once stored.
type answerSet struct {
	share *broker.Share
	sec   int64
	size  int64
	v     []answerVariant
}

type answerVariant struct {
	acao string
	keep bool
	b    []byte
}

// retiredSet marks the answers of an entry pushed out of its slot: no
// new set is stored there, so each set's bytes are counted off once.
var retiredSet = &answerSet{}

func newPollMemo() *pollMemo { return &pollMemo{seed: maphash.MakeSeed()} }

// request returns the parsed request of query and, when the query is
// remembered (or now admitted), its entry, whose req carries the memo.
func (p *pollMemo) request(query string, defaultTimeout, maxTimeout time.Duration) (*pollEntry, broker.SubscribeRequest, error) {
	h := maphash.String(p.seed, query)
	sl := &p.slots[h%pollMemoSlots]
	if e := sl.entry.Load(); e != nil && e.query == query {
		return e, e.req, nil
	}
	req, err := parseSubscribeQuery(query, defaultTimeout, maxTimeout)
	if err != nil || sl.seen.Swap(h) != h {
		return nil, req, err
	}
	// The query may be a view of a read buffer: keep a copy, and names
	// and cursor that point into the copy.
	query = strings.Clone(query)
	if req, err = parseSubscribeQuery(query, defaultTimeout, maxTimeout); err != nil {
		return nil, req, err
	}
	e := &pollEntry{query: query, req: req}
	e.req.Memo = &e.memo
	if old := sl.entry.Swap(e); old != nil {
		p.retire(old)
	}
	return e, e.req, nil
}

// retire counts off the answers of an entry that left its slot.
func (p *pollMemo) retire(e *pollEntry) {
	if old := e.answers.Swap(retiredSet); old != nil && old != retiredSet {
		p.bytes.Add(-old.size)
	}
}

// answer returns the whole HTTP response for res, an answer the broker
// gave from e's memo (res.Share set), with the given head variant: the
// bytes built for the same answer and variant this second, or new ones.
// The bytes are shared: never modify them.
func (p *pollMemo) answer(s *Server, e *pollEntry, res broker.Result, acao string, keep bool, now time.Time) []byte {
	sec := now.Unix()
	cur := e.answers.Load()
	current := cur != nil && cur.share == res.Share && cur.sec == sec
	if current {
		for i := range cur.v {
			if v := &cur.v[i]; v.acao == acao && v.keep == keep {
				return v.b
			}
		}
	}
	b := s.answerFor(res, acao, keep)
	if cur == retiredSet || (current && len(cur.v) >= pollMemoVariants) {
		return b
	}
	next := &answerSet{share: res.Share, sec: sec}
	if current {
		next.v = append(make([]answerVariant, 0, len(cur.v)+1), cur.v...)
	}
	next.v = append(next.v, answerVariant{acao: acao, keep: keep, b: b})
	for _, v := range next.v {
		next.size += int64(len(v.b))
	}
	if p.bytes.Add(next.size) > pollMemoMaxBytes {
		p.bytes.Add(-next.size)
		return b
	}
	if e.answers.CompareAndSwap(cur, next) {
		if cur != nil {
			p.bytes.Add(-cur.size)
		}
	} else {
		p.bytes.Add(-next.size) // someone else stored one meanwhile
	}
	return b
}
