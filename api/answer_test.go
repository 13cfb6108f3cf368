package api

import (
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/channel"
)

// writerAnswer builds an answer the general way: a header map, writeResult
// and eventWriter.bytes.
func writerAnswer(s *Server, res broker.Result, acao string, keep bool) []byte {
	w := newEventWriter()
	corsHeaders(w.Header(), acao)
	s.writeResult(w, res)
	return w.bytes(w.keepAlive(keep))
}

var dateLine = regexp.MustCompile(`\r\nDate: [^\r]*\r\n`)

// TestAnswerMatchesWriter: answerFor, which builds an answer in one
// buffer, gives byte for byte what the general path gives.
func TestAnswerMatchesWriter(t *testing.T) {
	s := &Server{}
	one := &channel.Message{ID: "o-1", JSON: []byte(`{"id":"o-1","data":1}`)}
	two := &channel.Message{ID: "o-2", JSON: []byte(`{"id":"o-2","data":"two"}`)}
	many := make(channel.Vector, 40)
	for i := range many {
		many[i] = channel.Pos{Origin: uint64(i + 1), TS: channel.Timestamp(1<<62 + i)}
	}
	results := map[string]broker.Result{
		"empty":         {},
		"one":           {Messages: []*channel.Message{one}, Cursor: broker.Cursor{Pos: channel.Vector{{Origin: 7, TS: 1 << 40}}}},
		"two, more":     {Messages: []*channel.Message{one, two}, More: true, Truncated: true},
		"drain":         {Reason: broker.ReasonShutdown, RetryAfter: 1500 * time.Millisecond},
		"closed":        {Reason: broker.ReasonClosed, Cursor: broker.Cursor{Default: 99}},
		"long cursor":   {Messages: []*channel.Message{one}, Cursor: broker.Cursor{Default: 5, Pos: many}},
		"timeout":       {Reason: broker.ReasonTimeout},
		"since a time":  {Cursor: broker.Cursor{Default: 1 << 50}},
		"two channels":  {Messages: []*channel.Message{two, one}},
		"large message": {Messages: []*channel.Message{{JSON: make([]byte, 100_000)}}},
	}
	for name, res := range results {
		for _, acao := range []string{"", "*", "https://good.example"} {
			for _, keep := range []bool{true, false} {
				want := dateLine.ReplaceAll(writerAnswer(s, res, acao, keep), []byte("\r\nDate: X\r\n"))
				got := dateLine.ReplaceAll(s.answerFor(res, acao, keep), []byte("\r\nDate: X\r\n"))
				assert.Equal(t, string(want), string(got), "%s, origin %q, keep %v", name, acao, keep)
			}
		}
	}
}
