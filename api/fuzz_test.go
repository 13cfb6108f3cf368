package api

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pushuphq/pushup/broker"
)

// FuzzParseSubscribeQuery: no query panics the parser, and an accepted
// query always yields channels and a timeout within bounds.
func FuzzParseSubscribeQuery(f *testing.F) {
	for _, s := range []string{
		"channels=a,b&since=now&timeout=30",
		"channels=a&since=1700000000000&until=1700000001000",
		"channels=a&since=" + broker.Cursor{}.String(),
		"channels=a&timeout=0.5&_=1",
		"channels=&since=c&timeout=-1",
		"channels=a&channels=b&timeout=1e400",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		req, err := parseSubscribeQuery(raw, 30*time.Second, 120*time.Second)
		if err != nil {
			if _, ok := err.(*apiError); !ok {
				t.Fatalf("error of unexpected type %T: %v", err, err)
			}
			return
		}
		if len(req.Channels) == 0 {
			t.Fatal("accepted a query without channels")
		}
		if req.Timeout < 0 || req.Timeout > 120*time.Second {
			t.Fatalf("timeout %s out of bounds", req.Timeout)
		}
		if req.Until < 0 {
			t.Fatalf("negative until %d", req.Until)
		}
		// The standard parser must agree on the channels wherever it can
		// parse the query at all.
		if v, err := url.ParseQuery(raw); err == nil {
			var want []string
			for _, c := range v["channels"] {
				want = append(want, strings.Split(c, ",")...)
			}
			if strings.Join(want, "\x00") != strings.Join(req.Channels, "\x00") {
				t.Fatalf("channels %q, url.ParseQuery says %q", req.Channels, want)
			}
		}
	})
}

// FuzzParsePublishBody: no body panics the parser, and an accepted body
// yields publications whose data is valid JSON.
func FuzzParsePublishBody(f *testing.F) {
	for _, s := range []string{
		`{"channels":["a"],"data":1}`,
		`[{"channels":["a","b"],"data":{"x":[1,2]}},{"channels":["c"],"data":null}]`,
		`{"channels":["a"]}`,
		`{"channel":"a"}`,
		`[]`,
		` [ {"channels":[],"data":"x"} ] `,
		`{"channels":["a"],"data":1}garbage`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		pubs, _, err := parsePublishBody(body)
		if err != nil {
			return
		}
		if len(pubs) == 0 {
			t.Fatal("accepted a body with no publications")
		}
		for _, p := range pubs {
			if !json.Valid(p.Data) {
				t.Fatalf("accepted invalid JSON data %q", p.Data)
			}
		}
	})
}

// FuzzRawBodyData: whatever a curl user posts becomes valid JSON data or a
// clear error.
func FuzzRawBodyData(f *testing.F) {
	f.Add([]byte("hello"), "")
	f.Add([]byte(`{"a":1}`), "application/json")
	f.Add([]byte("\xff"), "text/plain")
	f.Add([]byte(`{"a":`), "application/problem+json")
	f.Fuzz(func(t *testing.T, body []byte, ctype string) {
		data, err := rawBodyData(body, ctype)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("produced invalid JSON %q from %q", data, body)
		}
	})
}

// FuzzParseTTLBody: no body panics, and an accepted ttl is never negative.
func FuzzParseTTLBody(f *testing.F) {
	for _, s := range []string{``, `{"ttl":"10m"}`, `{"ttl":600}`, `{"ttl":1e300}`, `{"ttl":null}`, `{"tll":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := parseTTLBody(body)
		if err == nil && d < 0 {
			t.Fatalf("negative ttl %s from %q", d, body)
		}
	})
}
