package api

import (
	"encoding/binary"
	"net/http"
	"strconv"

	"github.com/pushuphq/pushup/broker"
)

// answerFor builds the whole HTTP response to a subscribe that res
// answers, with CORS headers for acao, keep-alive or close: what
// corsHeaders, writeResult and eventWriter.bytes make together, in one
// allocation for an answer with messages (a 410 takes the general path).
// answerMatchesWriter checks that the bytes are the same.
func (s *Server) answerFor(res broker.Result, acao string, keep bool) []byte {
	if res.Reason == broker.ReasonClosed {
		w := newEventWriter()
		corsHeaders(w.Header(), acao)
		s.writeResult(w, res)
		return w.bytes(w.keepAlive(keep))
	}
	keep = keep && res.Reason != broker.ReasonShutdown // writeResult's Connection: close
	// The body goes first, after room for the head; the head is then
	// copied in front of it. The room is an upper bound, so neither
	// append reallocates.
	room := len(answerHead) + len(acaoName) + len(acao) + len(corsHead) + len(answerTail) + len(dateSample) +
		len(lengthName) + 20 + len("\r\n") + len(closeHead) + len("\r\n")
	size := 96 + 2 + (2+3*binary.MaxVarintLen64+len(res.Cursor.Pos)*(8+binary.MaxVarintLen64))*4/3 // envelope, cursor
	for _, m := range res.Messages {
		size += len(m.JSON) + 1
	}
	buf := make([]byte, room, room+size)
	body := appendResult(buf[room:], res)
	var stack [256]byte
	head := append(stack[:0], answerHead...)
	if acao != "" {
		head = append(head, acaoName...)
		head = append(head, acao...)
		head = append(head, corsHead...)
	}
	head = append(head, answerTail...)
	head = append(head, httpDate()...)
	head = append(head, lengthName...)
	head = strconv.AppendInt(head, int64(len(body)), 10)
	head = append(head, "\r\n"...)
	if !keep {
		head = append(head, closeHead...)
	}
	head = append(head, "\r\n"...)
	if len(body) > size || len(head) > room {
		// A bound was wrong: slower, still correct.
		return append(append(make([]byte, 0, len(head)+len(body)), head...), body...)
	}
	out := buf[room-len(head) : room+len(body)]
	copy(out, head)
	return out
}

// The fixed parts of a 200 answer's head, in eventWriter's order (header
// names sorted, then Date, Content-Length, Connection).
const (
	answerHead = "HTTP/1.1 200 OK\r\n"
	acaoName   = "Access-Control-Allow-Origin: "
	lengthName = "\r\nContent-Length: "
	corsHead   = "\r\nAccess-Control-Expose-Headers: Retry-After\r\n"
	answerTail = "Cache-Control: no-store\r\nContent-Type: application/json\r\nVary: Origin\r\nDate: "
	closeHead  = "Connection: close\r\n"
)

// dateSample has the length of every Date value (http.TimeFormat).
var dateSample = http.TimeFormat
