package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/pushuphq/pushup/broker"
)

// channelParam returns the {channel} path segment, unescaped: chi matches
// on the raw path when the client escaped something, e.g. "tag%3Ago".
func channelParam(r *http.Request) (string, error) {
	raw := chi.URLParam(r, "channel")
	name, err := url.PathUnescape(raw)
	if err != nil {
		return "", badRequest("invalid_channel", fmt.Sprintf("channel %q is not a valid URL path segment", raw))
	}
	return name, nil
}

// channelInfo is the JSON form of broker.ChannelInfo.
type channelInfo struct {
	Channel     string `json:"channel"`
	Messages    int    `json:"messages"`
	Subscribers int    `json:"subscribers"`
	// Oldest and Newest are cached message times (Unix ms); null when the
	// cache is empty.
	Oldest *int64 `json:"oldest"`
	Newest *int64 `json:"newest"`
	// Expires is when the channel expires if idle from now (Unix ms).
	Expires    int64  `json:"expires"`
	TTL        string `json:"ttl"`
	TTLSeconds int64  `json:"ttl_seconds"`
}

func infoJSON(i broker.ChannelInfo) channelInfo {
	out := channelInfo{
		Channel:     i.Name,
		Messages:    i.Messages,
		Subscribers: i.Waiters,
		Expires:     i.ExpiresAt.UnixMilli(),
		TTL:         i.TTL.String(),
		TTLSeconds:  int64(i.TTL / time.Second),
	}
	if i.Messages > 0 {
		lo, hi := i.Oldest.Millis(), i.Newest.Millis()
		out.Oldest, out.Newest = &lo, &hi
	}
	return out
}

// ttlBody is the optional body of channel create and renew.
type ttlBody struct {
	// TTL is a Go duration string ("10m", "1h30m") or a number of seconds.
	TTL json.RawMessage `json:"ttl"`
}

// parseTTLBody reads an optional {"ttl": "10m" | 600} body. An empty body
// means the default ttl (zero).
func parseTTLBody(body []byte) (time.Duration, error) {
	if len(body) == 0 {
		return 0, nil
	}
	var tb ttlBody
	if err := decodeStrict(body, &tb, ` (expected {"ttl":"10m"} or an empty body)`); err != nil {
		return 0, err
	}
	if len(tb.TTL) == 0 || string(tb.TTL) == "null" {
		return 0, nil
	}
	var str string
	if err := json.Unmarshal(tb.TTL, &str); err == nil {
		d, err := time.ParseDuration(str)
		if err != nil {
			return 0, badRequest("invalid_ttl", fmt.Sprintf("ttl %q is not a duration like \"90s\", \"10m\" or \"2h\"", str))
		}
		if d <= 0 {
			return 0, badRequest("invalid_ttl", "ttl must be positive")
		}
		return d, nil
	}
	secs, err := strconv.ParseFloat(string(tb.TTL), 64)
	if err != nil || secs <= 0 || secs > float64(1<<62)/float64(time.Second) {
		return 0, badRequest("invalid_ttl", "ttl must be a duration string like \"10m\" or a positive number of seconds")
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// handleCreateChannel serves POST /v1/channels: a new channel with a
// server-picked unique name.
func (s *Server) handleCreateChannel(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	ttl, err := parseTTLBody(body)
	if err != nil {
		return err
	}
	info, err := s.b.Create(ttl)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/channels/"+info.Name)
	writeJSON(w, http.StatusCreated, infoJSON(info))
	return nil
}

// handlePutChannel serves PUT /v1/channels/{channel}: create or renew.
func (s *Server) handlePutChannel(w http.ResponseWriter, r *http.Request) error {
	name, err := channelParam(r)
	if err != nil {
		return err
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	ttl, err := parseTTLBody(body)
	if err != nil {
		return err
	}
	info, created, err := s.b.Renew(name, ttl)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, infoJSON(info))
	return nil
}

// handleGetChannel serves GET /v1/channels/{channel}.
func (s *Server) handleGetChannel(w http.ResponseWriter, r *http.Request) error {
	name, err := channelParam(r)
	if err != nil {
		return err
	}
	info, err := s.b.Info(name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, infoJSON(info))
	return nil
}

// closedBody answers DELETE /v1/channels/{channel}.
type closedBody struct {
	Channel string `json:"channel"`
	Closed  bool   `json:"closed"`
	// Answered is how many waiting subscribers were answered with 410.
	Answered int `json:"answered"`
}

// handleDeleteChannel serves DELETE /v1/channels/{channel}.
func (s *Server) handleDeleteChannel(w http.ResponseWriter, r *http.Request) error {
	name, err := channelParam(r)
	if err != nil {
		return err
	}
	n, err := s.b.CloseChannel(name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, closedBody{Channel: name, Closed: true, Answered: n})
	return nil
}
