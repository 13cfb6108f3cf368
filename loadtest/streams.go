package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pushuphq/pushup/internal/sse"
	"github.com/pushuphq/pushup/internal/testbed"
)

// Transports a comparison can measure: long polling (the default) or
// server-sent event streams.
const (
	TransportLongPoll = "longpoll"
	TransportSSE      = "sse"
)

// streamProtocol is how one broker's server-sent event stream is opened
// and read.
type streamProtocol interface {
	// request appends the request that opens a stream; lastID is the last
	// event id read ("" at first), sent as Last-Event-ID to resume.
	request(b []byte, host, lastID string) []byte
	// payload returns the published data an event carries; ok is false
	// for events that carry none (a connect reply, a cursor).
	payload(ev sse.Event) (data []byte, ok bool)
}

// appendGet appends a GET request for target with Last-Event-ID when
// lastID is set.
func appendGet(b []byte, target, host, lastID string) []byte {
	b = append(b, "GET "+target+" HTTP/1.1\r\nHost: "+host+"\r\nAccept: text/event-stream\r\n"...)
	if lastID != "" {
		b = append(b, "Last-Event-ID: "+lastID+"\r\n"...)
	}
	return append(b, "\r\n"...)
}

// pushupStream is PushUp's GET /v1/events: a message event's data is the
// message object, whose data field is the payload.
type pushupStream struct{}

func (pushupStream) request(b []byte, host, lastID string) []byte {
	return appendGet(b, "/v1/events?channels="+compareChannel+"&since=now", host, lastID)
}

func (pushupStream) payload(ev sse.Event) ([]byte, bool) {
	if ev.Type != "" {
		return nil, false // cursor, truncated, closed
	}
	var m struct {
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal([]byte(ev.Data), &m) != nil || m.Data == nil {
		return nil, false
	}
	return m.Data, true
}

// nchanStream is Nchan's EventSource subscriber (location /ev/): the
// event's data is the published body.
type nchanStream struct{}

func (nchanStream) request(b []byte, host, lastID string) []byte {
	return appendGet(b, "/ev/"+compareChannel, host, lastID)
}

func (nchanStream) payload(ev sse.Event) ([]byte, bool) {
	return []byte(ev.Data), ev.Type == "" && ev.Data != ""
}

// centrifugoStream is Centrifugo's unidirectional SSE
// (/connection/uni_sse): the connect reply first, then a push per
// publication, {"channel":..,"pub":{"data":..}} (or wrapped in "push").
type centrifugoStream struct{ token string }

func (c centrifugoStream) request(b []byte, host, _ string) []byte {
	// Recovery would need the stream position in the connect request;
	// the comparison does not reconnect in its window.
	q := url.QueryEscape(`{"token":"` + c.token + `"}`)
	return appendGet(b, "/connection/uni_sse?cf_connect="+q, host, "")
}

func (centrifugoStream) payload(ev sse.Event) ([]byte, bool) {
	type push struct {
		Channel string `json:"channel"`
		Pub     *struct {
			Data json.RawMessage `json:"data"`
		} `json:"pub"`
	}
	var v struct {
		push
		Push *push `json:"push"`
	}
	if json.Unmarshal([]byte(ev.Data), &v) != nil {
		return nil, false
	}
	p := v.push
	if v.Push != nil {
		p = *v.Push
	}
	if p.Pub == nil || p.Pub.Data == nil {
		return nil, false
	}
	return p.Pub.Data, true
}

// centrifugoProtocol publishes to Centrifugo; it has no long polling.
type centrifugoProtocol struct{ c *testbed.Centrifugo }

func (centrifugoProtocol) request(b []byte, _, _ string) []byte { return b }

func (centrifugoProtocol) answer(*http.Response, []byte, string) ([][]byte, string, error) {
	return nil, "", fmt.Errorf("%w: centrifugo has no long polling here", ErrInvalidConfig)
}

func (p centrifugoProtocol) publish(ctx context.Context, client *http.Client, _ string, payload []byte) error {
	return p.c.Publish(ctx, client, compareChannel, payload)
}

// runStream is one stream subscriber: open a stream, read its events
// until ctx ends, reopen (resuming from the last id) after an error.
func (s *compareSubscribers) runStream(ctx context.Context) {
	got := s.newReceived()
	defer s.keep(got)
	lastID := ""
	var req []byte
	for ctx.Err() == nil {
		conn, stop := s.connect(ctx)
		if conn == nil {
			continue
		}
		err := func() error {
			req = s.stream.request(req[:0], s.target.host, lastID)
			if _, err := conn.Write(req); err != nil {
				return err
			}
			resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 4096), nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				s.errors.status(resp.StatusCode)
				sleep(ctx, time.Second)
				return nil
			}
			r := sse.NewReader(resp.Body)
			for {
				ev, err := r.Next()
				now := time.Now().UnixNano()
				if err != nil {
					return err
				}
				lastID = r.LastID()
				data, ok := s.stream.payload(ev)
				if !ok {
					continue
				}
				s.take(got, data, now)
			}
		}()
		stop()
		conn.Close()
		if err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			s.errors.add(classify(KindRead, err))
		}
	}
}
