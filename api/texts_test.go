package api

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestErrorTextsAreForPeople: what a client or an operator reads names
// parameters, not Go identifiers or package prefixes, and is
// not HTML-escaped. (pushupd names its flags in configuration errors:
// see its TestConfigErrorsNameFlags.)
func TestErrorTextsAreForPeople(t *testing.T) {
	ts := startServer(t, options{api: func(c *Config) { c.PublisherKey = "k" }})
	r := ts.do(http.MethodPost, "/v1/publish", `{"channels":["a"],"data":1}`)
	require.Equal(t, http.StatusUnauthorized, r.status)
	assert.Contains(t, string(r.body), `Bearer <publisher key>`, "raw JSON, not \\u003c")

	_, r = ts.subscribe(q("channels", "a", "since", "c!!!", "timeout", "0"))
	require.Equal(t, http.StatusBadRequest, r.status)
	msg := r.json(t)["message"].(string)
	assert.Regexp(t, `^since: invalid cursor`, msg)
	assert.NotContains(t, msg, "broker:")

}
