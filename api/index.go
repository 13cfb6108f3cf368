package api

import "net/http"

// index is the body of GET /: what this server is and where its parts
// are, for a person who opens the server's address in a browser.
type index struct {
	Name      string            `json:"name"`
	About     string            `json:"about"`
	Subscribe string            `json:"subscribe"`
	Publish   string            `json:"publish"`
	Channels  string            `json:"channels"`
	Client    string            `json:"client"`
	Metrics   string            `json:"metrics"`
	Health    string            `json:"health"`
	Cluster   string            `json:"cluster,omitempty"`
	Plugins   map[string]string `json:"plugins,omitempty"`
	Docs      string            `json:"docs"`
}

// handleIndex serves GET /. It needs no key and answers before the node
// is ready: it says where things are, not what they hold.
func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	idx := index{
		Name:      "PushUp",
		About:     "a long-polling publish/subscribe broker: web backends publish over REST, browsers long-poll for messages",
		Subscribe: "GET /v1/subscribe?channels=a,b&since=<cursor from the previous answer>&timeout=30",
		Publish:   `POST /v1/publish {"channels":["a"],"data":...}`,
		Channels:  "/v1/channels/{channel}",
		Client:    "/pushup.js",
		Metrics:   "/metrics",
		Health:    "/healthz",
		Docs:      "https://github.com/pushuphq/pushup#readme",
	}
	if s.cfg.Cluster != nil {
		idx.Cluster = "/v1/cluster"
	}
	for _, p := range s.cfg.Plugins {
		if p.Path() != "" {
			if idx.Plugins == nil {
				idx.Plugins = map[string]string{}
			}
			idx.Plugins[p.Name()] = p.Path()
		}
	}
	writeJSON(w, http.StatusOK, idx)
}
