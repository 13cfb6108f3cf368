package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/api"
	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/web/demo"
)

// feedItem is one entry of a demo page's feed.
type feedItem struct {
	ID       string `json:"id"`
	Time     int64  `json:"time"`     // the message's time, Unix ms
	Received int64  `json:"received"` // when the page showed it, Unix ms
	Title    string `json:"title"`
}

const feedJS = `[...document.querySelectorAll("#feed li")].map((li) => ({
	id: li.dataset.id, time: Number(li.dataset.time), received: Number(li.dataset.received),
	title: li.querySelector(".title").textContent }))`

func feed(t *testing.T, ctx context.Context) []feedItem {
	t.Helper()
	return eval[[]feedItem](t, ctx, feedJS)
}

func ids(items []feedItem) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

// shows is a page expression: whether the feed shows message id.
func shows(id string) string {
	return `document.querySelector('#feed li[data-id=' + JSON.stringify(` + jsString(id) + `) + ']') !== null`
}

// postQuestion posts a question to the demo endpoint, as another person's
// page would, and returns the published message's id.
func postQuestion(t *testing.T, srv *pushupServer, author, title string, tags ...string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"author": author, "title": title, "tags": tags})
	resp, err := http.Post(srv.URL+"/demo/api/questions", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var answer struct {
		ID string `json:"id"`
	}
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&answer))
	return answer.ID
}

// setOffline cuts the page's network, or restores it, the way DevTools'
// "Offline" does: requests fail, and navigator.onLine and the
// online/offline events follow.
func setOffline(t *testing.T, ctx context.Context, offline bool) {
	t.Helper()
	run(t, ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: []*network.Conditions{{Offline: offline, DownloadThroughput: -1, UploadThroughput: -1}},
		})
		if err != nil {
			return err
		}
		_, err = cdp.Call(ctx, tg, network.OverrideNetworkState, network.OverrideNetworkStateParams{
			Offline: offline, DownloadThroughput: -1, UploadThroughput: -1,
		})
		return err
	}))
}

// TestDemoTwoPagesSeeEachQuestionOnce is the paper's Q&A example in two
// browsers following overlapping tags: every question either follows
// appears on both pages within a second, once, newest first, however many
// of its channels the page follows; a question neither follows appears on
// neither. It saves a screenshot of a page as a test artifact.
func TestDemoTwoPagesSeeEachQuestionOnce(t *testing.T) {
	srv := startPushup(t, nil)
	alice := newPage(t, "alice")
	bob := newPage(t, "bob")
	run(t, alice, chromedp.Navigate(srv.URL+"/demo/?name=alice&tags=go,javascript"))
	run(t, bob, chromedp.Navigate(srv.URL+"/demo/?name=bob&tags=JavaScript,rust&authors=carol"))
	require.Eventually(t, func() bool {
		return waiting(srv, "tag:javascript") == 2 && waiting(srv, "tag:go") == 1 &&
			waiting(srv, "tag:rust") == 1 && waiting(srv, "author:carol") == 1
	}, 5*time.Second, 5*time.Millisecond, "both pages wait on every channel they follow (tags lowercased)")

	// Alice asks through her page's form, with two tags she follows, one
	// of which Bob follows.
	run(t, alice,
		chromedp.SetValue(chromedp.ID("ask-title"), "How do I long-poll from a browser?"),
		chromedp.SetValue(chromedp.ID("ask-tags"), "go, JavaScript"),
		chromedp.Click(chromedp.ID("ask-submit")),
	)
	waitFor(t, alice, "the post to succeed", `document.getElementById("ask-result").dataset.state === "posted"`, 5*time.Second)
	q1 := eval[string](t, alice, `document.getElementById("ask-result").dataset.id`)
	// Carol's question is on three channels Bob follows (her author
	// channel, rust) or Alice does (go).
	q2 := postQuestion(t, srv, "carol", "Is the cursor opaque?", "rust", "go")
	q3 := postQuestion(t, srv, "dave", "Which Python web framework?", "python") // nobody follows these
	q4 := postQuestion(t, srv, "erin", "Does it work behind a load balancer?", "javascript", "rust")

	for name, page := range map[string]context.Context{"alice": alice, "bob": bob} {
		waitFor(t, page, name+" to show the last question", shows(q4), 5*time.Second)
		items := feed(t, page)
		// q3 was published before q4 and delivery is in time order, so
		// had it been coming it would be here.
		assert.Equal(t, []string{q4, q2, q1}, ids(items), "%s: each followed question once, newest first", name)
		assert.NotContains(t, ids(items), q3, name)
		for i, it := range items {
			if i > 0 {
				assert.LessOrEqual(t, it.Time, items[i-1].Time, "%s: time order", name)
			}
			assert.Less(t, it.Received-it.Time, int64(1000), "%s: %q shown within a second of its publication", name, it.Title)
		}
	}
	assert.Equal(t, "live", eval[string](t, alice, `document.getElementById("status").dataset.state`))
	screenshot(t, alice, "demo-two-pages-alice")
}

// TestDemoResumesAfterNetworkCut: questions posted while a page is offline
// all appear once it is back, each once, in order: pushup.js drops the
// poll in flight when the browser goes offline and resumes from its cursor
// when it is back.
func TestDemoResumesAfterNetworkCut(t *testing.T) {
	srv := startPushup(t, nil)
	page := newPage(t, "viewer")
	run(t, page, chromedp.Navigate(srv.URL+"/demo/?tags=go"))
	first := postQuestion(t, srv, "ann", "Posted before the cut", "go")
	waitFor(t, page, "the first question", shows(first), 5*time.Second)
	require.Eventually(t, func() bool { return waiting(srv, "tag:go") == 1 }, 5*time.Second, 5*time.Millisecond)

	setOffline(t, page, true)
	require.Eventually(t, func() bool { return waiting(srv, "tag:go") == 0 }, 5*time.Second, 5*time.Millisecond,
		"the poll in flight is dropped")
	waitFor(t, page, "the page to report the cut", `document.getElementById("status").dataset.state === "retrying"`, 5*time.Second)
	var during []string
	for _, title := range []string{"Posted during the cut (1)", "Posted during the cut (2)", "Posted during the cut (3)"} {
		during = append(during, postQuestion(t, srv, "bea", title, "go", "offline"))
	}
	assert.Equal(t, []string{first}, ids(feed(t, page)), "nothing can arrive while offline")

	cut := time.Now()
	setOffline(t, page, false)
	waitFor(t, page, "the page to be live again", `document.getElementById("status").dataset.state === "live"`, 10*time.Second)
	t.Logf("caught up %s after the network came back", time.Since(cut).Round(time.Millisecond))
	assert.Equal(t, []string{during[2], during[1], during[0], first}, ids(feed(t, page)),
		"all three posted during the cut, each once, in order, and the first not again")
}

// inboxJS lists the ids of a demo page's private notifications, newest first.
const inboxJS = `[...document.querySelectorAll("#inbox li")].map((li) => li.dataset.id)`

// TestDemoPrivateChannelPerUser: each demo page follows its person's
// private channel, user:<name>, with a token the demo mints: Alice's page
// shows what is published to user:alice and Bob's does not, and Bob's
// token cannot open Alice's channel. When the token expires, the page's
// getToken fetches a new one and nothing is missed.
func TestDemoPrivateChannelPerUser(t *testing.T) {
	key := []byte("the-browser-test-demo-token-key-of-32+")
	var skew atomic.Int64 // moves the token clocks, not the broker's
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	srv := startPushup(t, func(c *api.Config) {
		dc := demo.DefaultConfig()
		dc.TokenKey, dc.Now = key, now
		p, err := demo.NewPlugin(dc)
		require.NoError(t, err)
		c.Plugins = []api.Plugin{p}
		c.PrivateChannels = []string{demo.UserPrefix + "*"}
		c.SubscriberKeys = [][]byte{key}
		c.Now = now
	})
	alice := newPage(t, "alice")
	bob := newPage(t, "bob")
	run(t, alice, chromedp.Navigate(srv.URL+"/demo/?name=alice&tags=go"))
	run(t, bob, chromedp.Navigate(srv.URL+"/demo/?name=bob&tags=go"))
	require.Eventually(t, func() bool { return waiting(srv, "user:alice") == 1 && waiting(srv, "user:bob") == 1 },
		5*time.Second, 5*time.Millisecond, "each page waits on its own private channel")

	notify := func(user, text string) string {
		msgs, err := srv.B.Publish(broker.Publication{Channels: []string{demo.UserPrefix + user},
			Data: json.RawMessage(`{"type":"notification","text":` + jsString(text) + `}`)})
		require.NoError(t, err)
		return msgs[0].ID
	}
	inboxShows := func(id string) string {
		return `document.querySelector('#inbox li[data-id=' + JSON.stringify(` + jsString(id) + `) + ']') !== null`
	}
	n1 := notify("alice", "bob answered your question")
	waitFor(t, alice, "alice's notification", inboxShows(n1), 5*time.Second)
	// Published after n1: had Bob's page been given n1, it would show it
	// before n2.
	n2 := notify("bob", "carol answered your question")
	waitFor(t, bob, "bob's notification", inboxShows(n2), 5*time.Second)
	assert.Equal(t, []string{n2}, eval[[]string](t, bob, inboxJS), "bob sees his own only")
	assert.Equal(t, []string{n1}, eval[[]string](t, alice, inboxJS), "alice sees hers only")
	assert.Equal(t, "live", eval[string](t, alice, `document.getElementById("inbox-status").dataset.state`))
	assert.Empty(t, feed(t, alice), "notifications stay out of the public feed")

	// Bob's own token does not open Alice's channel.
	status := eval[int](t, bob, `(async () => {
		const tok = (await (await fetch("api/token?name=bob")).json()).token;
		return (await fetch("../v1/subscribe?channels=user:alice&timeout=0&token=" + tok)).status;
	})()`)
	assert.Equal(t, http.StatusForbidden, status)

	// Alice's token expires while her poll waits. The poll is not cut; the
	// next one is refused, and the page fetches a new token and polls on
	// from its cursor.
	tokenFetches := `performance.getEntriesByType("resource").filter((e) => e.name.includes("/demo/api/token")).length`
	require.Equal(t, 1, eval[int](t, alice, tokenFetches))
	skew.Store(int64(demo.DefaultConfig().TokenTTL + time.Second))
	n3 := notify("alice", "dave commented on your answer")
	n4 := notify("alice", "erin upvoted your question")
	waitFor(t, alice, "the notification after the renewal", inboxShows(n4), 5*time.Second)
	assert.Equal(t, []string{n4, n3, n1}, eval[[]string](t, alice, inboxJS), "each once, in order, none lost")
	assert.Equal(t, 2, eval[int](t, alice, tokenFetches), "one new token")
	assert.Equal(t, "live", eval[string](t, alice, `document.getElementById("inbox-status").dataset.state`))
	screenshot(t, alice, "demo-private-alice")
}
