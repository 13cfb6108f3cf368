package cluster

import (
	"crypto/subtle"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/pushuphq/pushup/broker"
)

// maxBody bounds a peer's answer (a snapshot can be large).
const maxBody = 1 << 30

// eventsPerPull caps the events one repair request returns.
const eventsPerPull = 1000

// Handler serves the node-to-node endpoints under /internal/v1/:
//
//	POST /internal/v1/stream    a peer's replication stream (Upgrade)
//	GET  /internal/v1/events    ?origin=<hex>&from=<seq>: events for repair
//	GET  /internal/v1/snapshot  this node's state, for a joining node
//	GET  /internal/v1/positions what this node holds of every origin
//
// All need "Authorization: Bearer <cluster key>" when a key is set.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /internal/v1/stream", n.serveStream)
	mux.HandleFunc("GET /internal/v1/events", n.serveEvents)
	mux.HandleFunc("GET /internal/v1/snapshot", n.serveSnapshot)
	mux.HandleFunc("GET /internal/v1/positions", n.servePositions)
	return n.authenticate(mux)
}

func (n *Node) authenticate(next http.Handler) http.Handler {
	if n.cfg.Key == "" {
		return next
	}
	want := []byte("Bearer " + n.cfg.Key)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			http.Error(w, "cluster key required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// serveEvents gives a peer an origin's events from a Seq on. When they
// were evicted it answers 410 with the oldest Seq it keeps.
func (n *Node) serveEvents(w http.ResponseWriter, r *http.Request) {
	if n.b == nil {
		http.Error(w, ErrNotStarted.Error(), http.StatusServiceUnavailable)
		return
	}
	origin := parseOrigin(r.URL.Query().Get("origin"))
	from, err := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64)
	if origin == 0 || err != nil || from == 0 {
		http.Error(w, "want origin=<16 hex digits>&from=<seq>", http.StatusBadRequest)
		return
	}
	evs, err := n.b.Events(origin, from, eventsPerPull)
	if errors.Is(err, broker.ErrEvicted) {
		oldest := uint64(0)
		for _, p := range n.b.Positions() {
			if p.Origin == origin {
				oldest = p.Oldest
			}
		}
		w.Header().Set("X-Pushup-Oldest", strconv.FormatUint(oldest, 10))
		http.Error(w, err.Error(), http.StatusGone)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(encodeEvents(evs))
}

// serveSnapshot gives a joining node this node's state. Only a ready node
// has a state worth copying.
func (n *Node) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	if !n.Ready() {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(encodeSnapshot(n.b.Snapshot()))
}

// readAllLimit reads r up to limit bytes.
func readAllLimit(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err == nil && int64(len(b)) > limit {
		return nil, errors.New("cluster: answer too large")
	}
	return b, err
}

// servePositions tells a joining node what this node holds, so it can
// catch up before it reports ready.
func (n *Node) servePositions(w http.ResponseWriter, r *http.Request) {
	if n.b == nil {
		http.Error(w, ErrNotStarted.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(encodePositions(msgDigest, n.cfg.NodeName, n.positions()))
}
