package loadtest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeBroker is a minimal in-process PushUp for population tests: one
// message list for every channel, cursors "c<index>", long polls that
// wait for the next publish. Knobs inject what a real server may do.
type fakeBroker struct {
	srv *httptest.Server

	mu       sync.Mutex
	messages []json.RawMessage
	changed  chan struct{} // closed and replaced on every publish
	requests int
	timeouts map[string]int // timeout parameter -> requests
	sources  map[string]bool

	// closeEvery answers every subscribe with "Connection: close".
	closeEvery bool
	// failFirst answers the first failFirst subscribes with 503.
	failFirst int
}

func newFakeBroker(t *testing.T, setup func(*fakeBroker)) *fakeBroker {
	t.Helper()
	f := &fakeBroker{changed: make(chan struct{}), timeouts: map[string]int{}, sources: map[string]bool{}}
	if setup != nil {
		setup(f)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/subscribe", f.subscribe)
	mux.HandleFunc("POST /v1/publish", f.publish)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeBroker) subscribe(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	f.mu.Lock()
	f.requests++
	n := f.requests
	f.timeouts[q.Get("timeout")]++
	f.sources[host] = true
	f.mu.Unlock()
	if f.closeEvery {
		w.Header().Set("Connection", "close")
	}
	if n <= f.failFirst {
		http.Error(w, `{"error":"shutting_down"}`, http.StatusServiceUnavailable)
		return
	}
	timeout, _ := strconv.ParseFloat(q.Get("timeout"), 64)
	deadline := time.NewTimer(time.Duration(timeout * float64(time.Second)))
	defer deadline.Stop()
	for {
		f.mu.Lock()
		pos := len(f.messages)
		if s := q.Get("since"); s != "now" {
			pos, _ = strconv.Atoi(strings.TrimPrefix(s, "c"))
		}
		msgs := f.messages[min(pos, len(f.messages)):]
		changed := f.changed
		f.mu.Unlock()
		if len(msgs) > 0 || timeout == 0 {
			f.answer(w, msgs, pos+len(msgs))
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			f.answer(w, nil, pos)
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (f *fakeBroker) answer(w http.ResponseWriter, msgs []json.RawMessage, cursor int) {
	var b strings.Builder
	b.WriteString(`{"messages":[`)
	for i, m := range msgs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"m%d","time":1,"channels":["a"],"data":%s}`, cursor-len(msgs)+i, m)
	}
	fmt.Fprintf(&b, `],"cursor":"c%d","more":false,"truncated":false}`, cursor)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(b.String()))
}

func (f *fakeBroker) publish(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Channels []string        `json:"channels"`
		Data     json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Channels) == 0 {
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	f.add(body.Data)
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(`{"id":"x","time":1,"channels":["a"]}`))
}

func (f *fakeBroker) add(data json.RawMessage) {
	f.mu.Lock()
	f.messages = append(f.messages, data)
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeBroker) stats() (requests int, timeouts map[string]int, sources map[string]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests, f.timeouts, f.sources
}
