package loadtest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/internal/sse"
	"github.com/pushuphq/pushup/internal/testbed"
)

func TestStreamProtocolsFindThePayload(t *testing.T) {
	payload := `{"p":0,"seq":1,"t":5}`
	for _, tc := range []struct {
		name  string
		proto streamProtocol
		ev    sse.Event
		want  string
	}{
		{"pushup message", pushupStream{}, sse.Event{ID: "c1", Data: `{"id":"x-1","time":1,"channels":["compare"],"data":` + payload + `}`}, payload},
		{"pushup cursor", pushupStream{}, sse.Event{Type: "cursor", Data: `{"cursor":"c1"}`}, ""},
		{"nchan message", nchanStream{}, sse.Event{ID: "1:0", Data: payload}, payload},
		{"centrifugo push", centrifugoStream{}, sse.Event{Data: `{"channel":"compare","pub":{"data":` + payload + `,"offset":3}}`}, payload},
		{"centrifugo wrapped push", centrifugoStream{}, sse.Event{Data: `{"push":{"channel":"compare","pub":{"data":` + payload + `}}}`}, payload},
		{"centrifugo connect reply", centrifugoStream{}, sse.Event{Data: `{"connect":{"client":"c","version":"6"}}`}, ""},
	} {
		data, ok := tc.proto.payload(tc.ev)
		assert.Equal(t, tc.want != "", ok, tc.name)
		if ok {
			assert.JSONEq(t, tc.want, string(data), tc.name)
		}
	}
	assert.Contains(t, string(pushupStream{}.request(nil, "h", "c9")), "Last-Event-ID: c9\r\n")
	assert.NotContains(t, string(pushupStream{}.request(nil, "h", "")), "Last-Event-ID")
}

func TestCompareTransportValidate(t *testing.T) {
	c := DefaultCompareConfig()
	c.Transport = "websocket"
	assert.ErrorIs(t, c.Validate(), ErrInvalidConfig)
	c = DefaultCompareConfig()
	c.Targets = []string{"centrifugo"}
	assert.ErrorIs(t, c.Validate(), ErrInvalidConfig, "centrifugo has no long polling here")
	c.Transport = TransportSSE
	assert.NoError(t, c.Validate())
	c.Targets = []string{"floor", "pushup"}
	assert.ErrorIs(t, c.Validate(), ErrInvalidConfig, "the floor serves long polls only")
}

// TestE2ECompareStreams runs PushUp's and Nchan's event streams with a few
// subscribers, and Centrifugo's when it is installed: every message reaches
// every stream once.
func TestE2ECompareStreams(t *testing.T) {
	testbed.NchanOrSkip(t)
	cfg := smallCompareConfig("pushup", "nchan")
	cfg.Transport = TransportSSE
	if _, err := testbed.FindCentrifugo(); err == nil {
		cfg.Targets = append(cfg.Targets, "centrifugo")
	} else {
		t.Logf("without centrifugo: %v", err)
	}
	cfg.Pushupd = pushupd.For(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Compare(ctx, cfg)
	require.NoError(t, err)
	require.Len(t, rep.Results, len(cfg.Targets))
	assert.Empty(t, rep.Verdicts, "issue 12's long-poll targets are not a stream's")
	for _, r := range rep.Results {
		require.Empty(t, r.Error, r.Target)
		assert.Equal(t, int64(120), r.Received, r.Target)
		assert.Zero(t, r.Duplicates, r.Target)
		assert.Empty(t, r.Errors, r.Target)
	}
}
