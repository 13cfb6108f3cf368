package testbed

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseUsage(t *testing.T) {
	out := `pushupd: PushUp long-polling publish/subscribe broker

Usage: pushupd [flags]

  -listen  (default :8080)  [$PUSHUP_LISTEN]
      address to serve HTTP on (host:port)
  -model  (default event)  [$PUSHUP_MODEL]
      concurrency model: event or goroutine (-x is not a flag here)
  -publisher-key  (default "")  [$PUSHUP_PUBLISHER_KEY]
      if set, ...
  -v
`
	assert.Equal(t, map[string]string{"listen": ":8080", "model": "event", "publisher-key": `""`, "v": ""}, parseUsage(out))
}

func TestMatchListenLine(t *testing.T) {
	tests := []struct{ line, addr, model string }{
		{`time=2026-11-22T11:00:00Z level=INFO msg="pushupd listening" addr=127.0.0.1:41234 origin=00ab implicit_channels=true`, "127.0.0.1:41234", ""},
		{`time=x level=INFO msg="pushupd listening" addr=127.0.0.1:1 model=event origin=1`, "127.0.0.1:1", "event"},
		{`{"time":"x","level":"INFO","msg":"pushupd listening","addr":"[::1]:8080","model":"goroutine"}`, "[::1]:8080", "goroutine"},
		{`time=x level=INFO msg=stopped`, "", ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.addr, matchListen(tt.line), tt.line)
		if tt.addr != "" {
			assert.Equal(t, tt.model, matchModel(tt.line), tt.line)
		}
	}
}
