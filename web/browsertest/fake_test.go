package browsertest

import (
	"net/http"
	"sync"
	"time"

	"github.com/pushuphq/pushup/web"
)

// fakeServer plays a PushUp server whose subscribe answers each test
// scripts, per channel list, to drive pushup.js through failures no real
// server produces on demand. It also serves pushup.js and an empty page, so
// the page and the client share its origin.
type fakeServer struct {
	mu      sync.Mutex
	scripts map[string][]fakeAnswer
	reqs    map[string][]fakeRequest
	// abandoned counts held polls the client went away from.
	abandoned map[string]int
}

// fakeAnswer is one scripted answer.
type fakeAnswer struct {
	status int
	body   string
	header map[string]string
}

// fakeRequest is one subscribe request the fake saw.
type fakeRequest struct {
	since, timeout string
	at             time.Time // when it arrived
	answered       time.Time // when its answer was written; zero if held
}

func newFakeServer() *fakeServer {
	return &fakeServer{scripts: map[string][]fakeAnswer{}, reqs: map[string][]fakeRequest{}, abandoned: map[string]int{}}
}

// script sets the answers to polls of channels, in order. Polls beyond
// them are held open until the client leaves, like a long poll on which
// nothing happens.
func (f *fakeServer) script(channels string, answers ...fakeAnswer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scripts[channels] = answers
}

func (f *fakeServer) requests(channels string) []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.reqs[channels]...)
}

func (f *fakeServer) abandonedPolls(channels string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.abandoned[channels]
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte("<!doctype html><title>pushup.js test</title>"))
		return
	case "/pushup.js":
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write([]byte(web.ClientJS()))
		return
	case "/v1/subscribe":
	default:
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	ch := q.Get("channels")
	f.mu.Lock()
	n := len(f.reqs[ch])
	f.reqs[ch] = append(f.reqs[ch], fakeRequest{since: q.Get("since"), timeout: q.Get("timeout"), at: time.Now()})
	script := f.scripts[ch]
	f.mu.Unlock()

	if n >= len(script) {
		<-r.Context().Done()
		f.mu.Lock()
		f.abandoned[ch]++
		f.mu.Unlock()
		return
	}
	a := script[n]
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(a.status)
	w.Write([]byte(a.body))
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
	f.mu.Lock()
	f.reqs[ch][n].answered = time.Now()
	f.mu.Unlock()
}

// answerOK is a 200 subscribe answer.
func answerOK(body string) fakeAnswer { return fakeAnswer{status: http.StatusOK, body: body} }
