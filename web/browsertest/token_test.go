package browsertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/api"
	"github.com/pushuphq/pushup/broker"
)

// TestClientRenewsAnExpiredToken: pushup.js gets its token from getToken,
// and on 401 token_expired asks again and polls once more at once, from
// the same cursor: no message lost, none repeated, no error reported. A
// getToken that keeps handing out expired tokens stops the subscription.
func TestClientRenewsAnExpiredToken(t *testing.T) {
	secret := []byte("a-browser-test-subscriber-secret-32+")
	srv := startPushup(t, func(c *api.Config) {
		c.PrivateChannels = []string{"user:*"}
		c.SubscriberKeys = [][]byte{secret}
	})
	mint := func(exp time.Time) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"channels": []string{"user:42"}, "exp": exp.Unix()}).SignedString(secret)
		require.NoError(t, err)
		return s
	}
	expired, fresh := mint(time.Now().Add(-time.Minute)), mint(time.Now().Add(time.Hour))
	ctx := newPage(t, "page")
	run(t, ctx, chromedp.Navigate(srv.URL+"/healthz"))
	_, err := srv.B.Publish(broker.Publication{Channels: []string{"user:42"}, Data: json.RawMessage(`"cached"`)})
	require.NoError(t, err)

	run(t, ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`window.tokens = [%s, %s]; window.asked = 0;`, jsString(expired), jsString(fresh))))
	startClient(t, ctx, "/pushup.js", "renew", []string{"user:42"},
		`{ token: tokens.shift(), getToken: async () => { asked++; return tokens.shift(); } }`, "")
	waitFor(t, ctx, "the cached message", `logs.renew.some((e) => e.kind === "message")`, 5*time.Second)
	require.Eventually(t, func() bool { return waiting(srv, "user:42") == 1 }, 5*time.Second, 5*time.Millisecond)
	_, err = srv.B.Publish(broker.Publication{Channels: []string{"user:42"}, Data: json.RawMessage(`"live"`)})
	require.NoError(t, err)
	waitFor(t, ctx, "the live message", `logs.renew.filter((e) => e.kind === "message").length === 2`, 5*time.Second)
	var data []string
	for _, e := range clientLog(t, ctx, "renew") {
		assert.NotContains(t, []string{"error", "closed"}, e.Kind, "%+v", e)
		if e.Kind == "message" {
			data = append(data, string(e.Data))
		}
	}
	assert.Equal(t, []string{`"cached"`, `"live"`}, data, "each once, in order")
	assert.Equal(t, 1, eval[int](t, ctx, `asked`), "getToken was asked once, after token_expired")

	startClient(t, ctx, "/pushup.js", "stale", []string{"user:42"},
		fmt.Sprintf(`{ getToken: () => { asked++; return %s; } }`, jsString(expired)), "")
	waitFor(t, ctx, "the subscription stopped", `!subs.stale.active`, 5*time.Second)
	log := clientLog(t, ctx, "stale")
	require.Len(t, log, 1)
	assert.Equal(t, "closed", log[0].Kind)
	assert.Equal(t, http.StatusUnauthorized, log[0].Status)
	assert.Equal(t, "token_expired", log[0].Code)
	assert.Equal(t, 3, eval[int](t, ctx, `asked`), "two more asks: the first token and one renewal")
}
