package api

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testSecret = []byte("a-test-secret-of-at-least-32-bytes!!")

// testClock is a settable clock for token validity.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}
func (c *testClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func mint(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return s
}

func hs(t testing.TB, clock *testClock, channels []string, ttl time.Duration) string {
	return mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{
		"channels": channels, "exp": clock.now().Add(ttl).Unix(),
	})
}

func privateServer(t *testing.T, m Model, clock *testClock, mod func(*Config)) *testServer {
	return startServer(t, options{model: m, api: func(c *Config) {
		c.PrivateChannels = []string{"user:*", "secret"}
		c.SubscriberKeys = [][]byte{testSecret}
		c.SubscriberCookie = "pushup_token"
		c.Now = clock.now
		if mod != nil {
			mod(c)
		}
	}})
}

func TestSubscriberTokenOutcomes(t *testing.T) {
	eachModel(t, func(t *testing.T, m Model) {
		clock := newTestClock()
		ts := privateServer(t, m, clock, nil)
		good := hs(t, clock, []string{"user:42", "user:7:*"}, time.Hour)
		other, _ := rsa.GenerateKey(rand.Reader, 2048)
		cases := []struct {
			name, channels, token, how string
			status                     int
			code, mentions             string
		}{
			{name: "public needs nothing", channels: "news", status: 200},
			{name: "no token", channels: "news,user:42", status: 401, code: "token_required", mentions: "user:42"},
			{name: "garbage", channels: "user:42", token: "not.a.jwt", status: 401, code: "token_invalid"},
			{name: "wrong key", channels: "user:42", status: 401, code: "token_invalid",
				token: mint(t, jwt.SigningMethodHS256, []byte("another-secret-of-at-least-32-bytes"), jwt.MapClaims{"channels": []string{"user:42"}, "exp": clock.now().Add(time.Hour).Unix()})},
			{name: "alg none", channels: "user:42", status: 401, code: "token_invalid",
				token: mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"channels": []string{"user:42"}, "exp": clock.now().Add(time.Hour).Unix()})},
			{name: "RS256 with no public key configured", channels: "user:42", status: 401, code: "token_invalid",
				token: mint(t, jwt.SigningMethodRS256, other, jwt.MapClaims{"channels": []string{"user:42"}, "exp": clock.now().Add(time.Hour).Unix()})},
			{name: "no exp", channels: "user:42", status: 401, code: "token_invalid",
				token: mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"channels": []string{"user:42"}})},
			{name: "expired", channels: "user:42", status: 401, code: "token_expired",
				token: mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"channels": []string{"user:42"}, "exp": clock.now().Add(-time.Minute).Unix()})},
			{name: "not yet valid", channels: "user:42", status: 401, code: "token_invalid",
				token: mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"channels": []string{"user:42"}, "exp": clock.now().Add(time.Hour).Unix(), "nbf": clock.now().Add(time.Minute).Unix()})},
			{name: "channels not an array", channels: "user:42", status: 401, code: "token_invalid",
				token: mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"channels": "user:42", "exp": clock.now().Add(time.Hour).Unix()})},
			{name: "forbidden channel", channels: "user:42,user:43", token: good, status: 403, code: "channel_forbidden", mentions: "user:43"},
			{name: "exact private name not granted", channels: "secret", token: good, status: 403, code: "channel_forbidden", mentions: "secret"},
			{name: "granted, header", channels: "news,user:42", token: good, status: 200},
			{name: "granted by prefix", channels: "user:7:inbox", token: good, status: 200},
			{name: "granted, query", channels: "user:42", token: good, how: "query", status: 200},
			{name: "granted, cookie", channels: "user:42", token: good, how: "cookie", status: 200},
			{name: "bad token in query", channels: "user:42", token: "x", how: "query", status: 401, code: "token_invalid"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				path := "/v1/subscribe?timeout=0&channels=" + c.channels
				var hdr []string
				switch {
				case c.token == "":
				case c.how == "query":
					path += "&token=" + c.token
				case c.how == "cookie":
					hdr = []string{"Cookie", "pushup_token=" + c.token}
				default:
					hdr = []string{"Authorization", "Bearer " + c.token}
				}
				r := ts.do(http.MethodGet, path, "", hdr...)
				require.Equal(t, c.status, r.status, "body: %s", r.body)
				if c.code != "" {
					assert.Equal(t, c.code, r.code(t))
					assert.Contains(t, r.json(t)["message"], c.mentions)
				}
				if c.status == 401 {
					assert.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
				}
			})
		}
		assert.Zero(t, ts.b.Stats().Channels, "refused subscribes leave nothing behind")
	})
}

// A token checked when its poll began is not re-checked when the answer
// comes; the next poll is refused.
func TestTokenExpiringWhileParkedIsNotCut(t *testing.T) {
	eachModel(t, func(t *testing.T, m Model) {
		clock := newTestClock()
		ts := privateServer(t, m, clock, nil)
		tok := hs(t, clock, []string{"user:1"}, time.Minute)
		got := make(chan response, 1)
		go func() {
			got <- ts.do(http.MethodGet, "/v1/subscribe?since=now&timeout=30&channels=user:1", "", "Authorization", "Bearer "+tok)
		}()
		require.Eventually(t, func() bool { return ts.b.Stats().Waiters == 1 }, 10*time.Second, time.Millisecond)
		clock.advance(2 * time.Minute)
		require.Equal(t, http.StatusCreated, ts.publish(`{"channels":["user:1"],"data":"hi"}`).status)
		r := <-got
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		assert.Contains(t, string(r.body), `"hi"`)
		r = ts.do(http.MethodGet, "/v1/subscribe?timeout=0&channels=user:1", "", "Authorization", "Bearer "+tok)
		require.Equal(t, http.StatusUnauthorized, r.status)
		assert.Equal(t, "token_expired", r.code(t))
	})
}

func TestSubscriberPublicKeysAndRotation(t *testing.T) {
	clock := newTestClock()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	oldSecret := []byte("the-old-secret-still-listed-for-rotation")
	ts := startServer(t, options{model: ModelGoroutine, api: func(c *Config) {
		c.PrivateChannels = []string{"*"}
		c.SubscriberKeys = [][]byte{testSecret, oldSecret}
		c.SubscriberPublicKeys = []crypto.PublicKey{&rsaKey.PublicKey, &ecKey.PublicKey, edPub}
		c.Now = clock.now
	}})
	claims := func() jwt.MapClaims {
		return jwt.MapClaims{"channels": []string{"a"}, "exp": clock.now().Add(time.Hour).Unix()}
	}
	for name, tok := range map[string]string{
		"HS256 new": mint(t, jwt.SigningMethodHS256, testSecret, claims()),
		"HS256 old": mint(t, jwt.SigningMethodHS256, oldSecret, claims()),
		"RS256":     mint(t, jwt.SigningMethodRS256, rsaKey, claims()),
		"ES256":     mint(t, jwt.SigningMethodES256, ecKey, claims()),
		"EdDSA":     mint(t, jwt.SigningMethodEdDSA, edKey, claims()),
	} {
		r := ts.do(http.MethodGet, "/v1/subscribe?timeout=0&channels=a", "", "Authorization", "Bearer "+tok)
		assert.Equal(t, http.StatusOK, r.status, "%s: %s", name, r.body)
	}
	// An HMAC token keyed with the RSA public key's bytes is the classic
	// algorithm-confusion attack: HMAC must only use HMAC secrets.
	pubDER := rsaKey.PublicKey.N.Bytes()
	r := ts.do(http.MethodGet, "/v1/subscribe?timeout=0&channels=a", "", "Authorization", "Bearer "+mint(t, jwt.SigningMethodHS256, pubDER, claims()))
	assert.Equal(t, http.StatusUnauthorized, r.status)
}

func TestTokenCacheIsUsedAndBounded(t *testing.T) {
	clock := newTestClock()
	v, err := newTokenVerifier([][]byte{testSecret}, nil, clock.now)
	require.NoError(t, err)
	tok := hs(t, clock, []string{"a"}, time.Minute)
	_, err = v.verify(tok)
	require.NoError(t, err)
	require.Equal(t, 1, v.cached())
	// A cached token is still refused once it expires.
	clock.advance(2 * time.Minute)
	_, err = v.verify(tok)
	assert.Equal(t, errTokenExpired, err)
	for i := range tokenCacheSize + 10 {
		v.store(strings.Repeat("x", 4)+string(rune(i)), &grant{exp: clock.now().Add(time.Hour)}, clock.now())
	}
	assert.LessOrEqual(t, v.cached(), tokenCacheSize)
}

func BenchmarkTokenVerify(b *testing.B) {
	clock := newTestClock()
	v, err := newTokenVerifier([][]byte{testSecret}, nil, clock.now)
	require.NoError(b, err)
	tok := hs(b, clock, []string{"user:42", "room:7:*"}, time.Hour)
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v.mu.Lock()
			clear(v.cache)
			v.mu.Unlock()
			if _, err := v.verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestSeveralPublisherKeys(t *testing.T) {
	ts := startServer(t, options{model: ModelGoroutine, api: func(c *Config) {
		c.PublisherKey = "old-key"
		c.PublisherKeys = []string{"new-key"}
	}})
	for key, want := range map[string]int{"old-key": 201, "new-key": 201, "other": 401, "": 401} {
		r := ts.do(http.MethodPost, "/v1/publish", `{"channels":["a"],"data":1}`, "Authorization", "Bearer "+key)
		assert.Equal(t, want, r.status, key)
	}
}

func FuzzSubscriberToken(f *testing.F) {
	clock := newTestClock()
	f.Add(hs(f, clock, []string{"a"}, time.Hour))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Add("")
	v, err := newTokenVerifier([][]byte{testSecret}, nil, clock.now)
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, tok string) {
		g, err := v.verify(tok)
		if err != nil {
			require.Nil(t, g)
			return
		}
		// Anything accepted was signed with the key and has an exp.
		require.False(t, g.exp.IsZero())
		_, perr := jwt.Parse(tok, func(*jwt.Token) (any, error) { return testSecret, nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(clock.now))
		require.NoError(t, perr)
	})
}
