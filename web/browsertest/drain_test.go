package browsertest

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClientHonoursTheDrainHint: an answer with retry_after_ms (a node
// draining at shutdown) makes pushup.js wait that long before it polls
// again from the answer's cursor.
func TestClientHonoursTheDrainHint(t *testing.T) {
	fake := newFakeServer()
	const hint = 400 * time.Millisecond
	fake.script("drained",
		answerOK(`{"messages":[],"cursor":"c1","more":false,"truncated":false}`),
		answerOK(`{"messages":[],"cursor":"c2","more":false,"truncated":false,"retry_after_ms":400}`),
	)
	url := serve(t, fake)
	ctx := newPage(t, "page")
	run(t, ctx, chromedp.Navigate(url+"/"))
	startClient(t, ctx, "/pushup.js", "drained", []string{"drained"}, `{ timeout: 7 }`, "")
	require.Eventually(t, func() bool { return len(fake.requests("drained")) == 3 }, 10*time.Second, 5*time.Millisecond)

	reqs := fake.requests("drained")
	gap := reqs[2].at.Sub(reqs[1].answered)
	assert.GreaterOrEqual(t, gap, hint-time.Millisecond, "the hint is honoured: gap %s", gap)
	assert.Equal(t, "c2", reqs[2].since, "and the poll resumes from the drained answer's cursor")
	run(t, ctx, chromedp.Evaluate[chromedp.Void](`subs.drained.unsubscribe()`))
}
