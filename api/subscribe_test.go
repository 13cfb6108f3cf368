package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/broker"
)

func TestSubscribeAnswersCachedAtOnce(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		ts.publish(`{"channels":["a"],"data":1}`)
		ts.publish(`{"channels":["a","b"],"data":2}`)
		ts.publish(`{"channels":["b"],"data":3}`)
		start := time.Now()
		a, r := ts.subscribe(q("channels", "b,a")) // default timeout 30s
		require.Equal(t, http.StatusOK, r.status)
		assert.Less(t, time.Since(start), 10*time.Second, "cached messages do not wait")
		assert.Equal(t, []string{"1", "2", "3"}, a.data(), "merged in time order, 2 once")
		assert.False(t, a.More)
		assert.False(t, a.Truncated)
		assert.Equal(t, "no-store", r.header.Get("Cache-Control"))
		for i := 1; i < len(a.Messages); i++ {
			assert.LessOrEqual(t, a.Messages[i-1].Time, a.Messages[i].Time)
		}
	})
}

func TestSubscribeLongPollWokenByPublish(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		got := make(chan subAnswer, 1)
		go func() {
			a, _ := ts.subscribe(q("channels", "a,b", "since", "now", "timeout", "60"))
			got <- a
		}()
		require.Eventually(t, func() bool { return ts.b.Stats().Waiters == 2 }, 5*time.Second, 5*time.Millisecond)
		ts.publish(`{"channels":["b","c"],"data":"hi"}`)
		a := <-got
		assert.Equal(t, []string{`"hi"`}, a.data())
		assert.Equal(t, []string{"b", "c"}, a.Messages[0].Channels)

		// The cursor resumes after it.
		next, _ := ts.subscribe(q("channels", "a,b", "since", a.Cursor, "timeout", "0"))
		assert.Empty(t, next.Messages)
	})
}

func TestSubscribeTimeoutAnswersEmptyWithCursor(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		a, r := ts.subscribe(q("channels", "a", "timeout", "0.05"))
		require.Equal(t, http.StatusOK, r.status)
		assert.Empty(t, a.Messages)
		assert.Equal(t, `{"messages":[],"cursor":"`+a.Cursor+`","more":false,"truncated":false}`+"\n", string(r.body))
		ts.publish(`{"channels":["a"],"data":1}`)
		b, _ := ts.subscribe(q("channels", "a", "since", a.Cursor, "timeout", "0"))
		assert.Equal(t, []string{"1"}, b.data())
	})
}

func TestSubscribeSinceForms(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		var times []int64
		for i := range 3 {
			r := ts.publish(fmt.Sprintf(`{"channels":["a"],"data":%d}`, i))
			times = append(times, int64(r.json(t)["time"].(float64)))
			time.Sleep(2 * time.Millisecond) // distinct milliseconds
		}
		for _, tc := range []struct {
			query []string
			want  []string
		}{
			{[]string{"channels", "a", "timeout", "0"}, []string{"0", "1", "2"}},
			{[]string{"channels", "a", "since", "0", "timeout", "0"}, []string{"0", "1", "2"}},
			{[]string{"channels", "a", "since", strconv.FormatInt(times[0], 10), "timeout", "0"}, []string{"1", "2"}},
			{[]string{"channels", "a", "since", strconv.FormatInt(times[0], 10), "until", strconv.FormatInt(times[1], 10), "timeout", "0"}, []string{"1"}},
			{[]string{"channels", "a", "until", strconv.FormatInt(times[1], 10)}, []string{"0", "1"}},
			{[]string{"channels", "a", "since", "now", "timeout", "0"}, nil},
		} {
			a, r := ts.subscribe(q(tc.query...))
			require.Equal(t, http.StatusOK, r.status, "%v: %s", tc.query, r.body)
			assert.Equal(t, tc.want, nilIfEmpty(a.data()), "%v", tc.query)
		}
	})
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestSubscribeRepeatedChannelsParam(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		ts.publish(`{"channels":["a"],"data":1}`)
		ts.publish(`{"channels":["b"],"data":2}`)
		a, r := ts.subscribe("channels=a&channels=b&timeout=0&_=12345")
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		assert.Equal(t, []string{"1", "2"}, a.data())
	})
}

func TestSubscribeBadInput(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model, api: func(c *Config) { c.MaxTimeout = 60 * time.Second }})
		many := make([]string, 65)
		for i := range many {
			many[i] = "c" + strconv.Itoa(i)
		}
		for _, tc := range []struct {
			query string
			code  string
		}{
			{"", "no_channels"},
			{"channels=", "invalid_channel"},
			{"channels=a,,b", "invalid_channel"},
			{"channels=a%20b", "invalid_channel"},
			{"channels=a,a", "duplicate_channel"},
			{"channels=" + strings.Join(many, ","), "too_many_channels"},
			{"channels=a&since=yesterday", "invalid_since"},
			{"channels=a&since=-5", "invalid_since"},
			{"channels=a&since=cnotacursor!", "invalid_since"},
			{"channels=a&since=cAQ", "invalid_since"},
			{"channels=a&since=99999999999999999999", "invalid_since"},
			{"channels=a&until=soon", "invalid_until"},
			{"channels=a&until=0", "invalid_until"},
			{"channels=a&since=2000&until=1000", "invalid_range"},
			{"channels=a&timeout=-1", "invalid_timeout"},
			{"channels=a&timeout=61", "invalid_timeout"},
			{"channels=a&timeout=NaN", "invalid_timeout"},
			{"channels=a&timeout=Inf", "invalid_timeout"},
			{"channels=a&timeout=ten", "invalid_timeout"},
		} {
			_, r := ts.subscribe(tc.query)
			assert.Equal(t, http.StatusBadRequest, r.status, "%s: %s", tc.query, r.body)
			assert.Equal(t, tc.code, r.code(t), tc.query)
		}
		assert.Zero(t, ts.b.Stats().Channels, "no failed subscribe created a channel")
	})
}

func TestSubscribeMissingChannelWhenImplicitOff(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model, broker: func(c *broker.Config) { c.ImplicitChannels = false }})
		_, r := ts.subscribe(q("channels", "nope", "timeout", "0"))
		assert.Equal(t, http.StatusNotFound, r.status)
		assert.Equal(t, "channel_not_found", r.code(t))
	})
}

func TestSubscribeMoreAndTruncated(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model, broker: func(c *broker.Config) {
			c.MaxResponseMessages = 2
			c.Channel.MaxMessages = 5
		}})
		first, _ := ts.subscribe(q("channels", "a", "timeout", "0"))
		for i := range 8 {
			ts.publish(fmt.Sprintf(`{"channels":["a"],"data":%d}`, i))
		}
		a, _ := ts.subscribe(q("channels", "a", "since", first.Cursor, "timeout", "0"))
		assert.True(t, a.Truncated, "0, 1 and 2 were evicted")
		assert.True(t, a.More)
		assert.Equal(t, []string{"3", "4"}, a.data())
		var rest []string
		for a.More {
			a, _ = ts.subscribe(q("channels", "a", "since", a.Cursor, "timeout", "0"))
			rest = append(rest, a.data()...)
		}
		assert.Equal(t, []string{"5", "6", "7"}, rest)
	})
}
