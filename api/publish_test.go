package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/broker"
)

func TestPublishOne(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		r := ts.publish(`{"channels":["author:john","tag:c++"],"data":{"q":"why?"}}`)
		require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
		v := r.json(t)
		assert.NotEmpty(t, v["id"])
		assert.Greater(t, v["time"].(float64), 1e12)
		assert.Equal(t, []any{"author:john", "tag:c++"}, v["channels"])
		assert.Equal(t, "application/json", r.header.Get("Content-Type"))

		a, _ := ts.subscribe(q("channels", "tag:c++", "timeout", "0"))
		require.Len(t, a.Messages, 1)
		assert.Equal(t, v["id"], a.Messages[0].ID)
		assert.JSONEq(t, `{"q":"why?"}`, string(a.Messages[0].Data))
	})
}

func TestPublishBatchArray(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		r := ts.publish(`[{"channels":["a"],"data":1},{"channels":["a","b"],"data":null}]`)
		require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
		var out []map[string]any
		require.NoError(t, jsonUnmarshal(r.body, &out))
		require.Len(t, out, 2)
		assert.NotEqual(t, out[0]["id"], out[1]["id"])
		assert.Equal(t, []any{"a", "b"}, out[1]["channels"])
		a, _ := ts.subscribe(q("channels", "a,b", "timeout", "0"))
		assert.Equal(t, []string{"1", "null"}, a.data())
	})
}

func TestPublishBadInputChangesNothing(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		tooMany := make([]string, 65)
		for i := range tooMany {
			tooMany[i] = `"c` + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `"`
		}
		tests := []struct {
			name   string
			body   string
			status int
			code   string
		}{
			{"empty body", ``, 400, "invalid_json"},
			{"malformed", `{"channels":["a"],"data":`, 400, "invalid_json"},
			{"not json", `hello`, 400, "invalid_json"},
			{"trailing data", `{"channels":["a"],"data":1} {}`, 400, "invalid_json"},
			{"unknown field", `{"channel":["a"],"data":1}`, 400, "invalid_json"},
			{"channels not array", `{"channels":"a","data":1}`, 400, "invalid_json"},
			{"channel not string", `{"channels":[1],"data":1}`, 400, "invalid_json"},
			{"top-level string", `"a"`, 400, "invalid_json"},
			{"missing data", `{"channels":["a"]}`, 400, "missing_data"},
			{"missing channels", `{"data":1}`, 400, "no_channels"},
			{"empty channels", `{"channels":[],"data":1}`, 400, "no_channels"},
			{"empty array", `[]`, 400, "no_publications"},
			{"bad name", `{"channels":["a b"],"data":1}`, 400, "invalid_channel"},
			{"empty name", `{"channels":[""],"data":1}`, 400, "invalid_channel"},
			{"duplicate", `{"channels":["a","a"],"data":1}`, 400, "duplicate_channel"},
			{"too many channels", `{"channels":[` + strings.Join(tooMany, ",") + `],"data":1}`, 400, "too_many_channels"},
			{"one bad in batch", `[{"channels":["a"],"data":1},{"channels":["b/c"],"data":2}]`, 400, "invalid_channel"},
			{"body too large", `{"channels":["a"],"data":"` + strings.Repeat("x", 2000) + `"}`, 413, "body_too_large"},
		}
		ts := startServer(t, options{model: model, api: func(c *Config) { c.MaxBodyBytes = 1000 }})
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := ts.publish(tt.body)
				assert.Equal(t, tt.status, r.status, "%s", r.body)
				assert.Equal(t, tt.code, r.code(t))
				st := ts.b.Stats()
				assert.Zero(t, st.Published)
				assert.Zero(t, st.Channels)
			})
		}
	})
}

func TestPublishToMissingChannelWhenImplicitOff(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model, broker: func(c *broker.Config) { c.ImplicitChannels = false }})
		require.Equal(t, http.StatusCreated, ts.do(http.MethodPut, "/v1/channels/a", "").status)
		r := ts.publish(`{"channels":["a","missing"],"data":1}`)
		assert.Equal(t, http.StatusNotFound, r.status)
		assert.Equal(t, "channel_not_found", r.code(t))
		assert.Zero(t, ts.b.Stats().Messages, "nothing stored in a either")
	})
}

func TestRawBodyShortcut(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		tests := []struct {
			name, path, body, ctype string
			status                  int
			data                    string
			code                    string
		}{
			{"text becomes a string", "/v1/channels/news/messages", "hello world", "", 201, `"hello world"`, ""},
			{"form-encoded text too", "/v1/channels/news/messages", "a=b", "application/x-www-form-urlencoded", 201, `"a=b"`, ""},
			{"JSON stays JSON", "/v1/channels/news/messages", `{"n": 2}`, "application/json", 201, `{"n":2}`, ""},
			{"undeclared JSON stays JSON", "/v1/channels/news/messages", `[1,2]`, "text/plain", 201, `[1,2]`, ""},
			{"escaped channel name", "/v1/channels/tag%3Ago/messages", "x", "", 201, `"x"`, ""},
			{"declared JSON must be JSON", "/v1/channels/news/messages", `{"n":`, "application/json; charset=utf-8", 400, "", "invalid_json"},
			{"binary rejected", "/v1/channels/news/messages", "\xff\xfe", "application/octet-stream", 400, "", "invalid_data"},
			{"empty rejected", "/v1/channels/news/messages", "  ", "", 400, "", "missing_data"},
			{"bad channel", "/v1/channels/a%20b/messages", "x", "", 400, "", "invalid_channel"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := ts.b.Stats().Published
				r := ts.do(http.MethodPost, tt.path, tt.body, "Content-Type", tt.ctype)
				require.Equal(t, tt.status, r.status, "%s", r.body)
				if tt.code != "" {
					assert.Equal(t, tt.code, r.code(t))
					assert.Equal(t, before, ts.b.Stats().Published)
					return
				}
				id := r.json(t)["id"]
				ch := r.json(t)["channels"].([]any)[0].(string)
				a, _ := ts.subscribe(q("channels", ch, "timeout", "0"))
				last := a.Messages[len(a.Messages)-1]
				assert.Equal(t, id, last.ID)
				assert.Equal(t, tt.data, string(last.Data))
			})
		}
	})
}
