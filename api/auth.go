package api

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pushuphq/pushup/internal/evhttp"
)

// Subscriber tokens are JWTs (RFC 7519) that the application's backend
// mints and the browser presents on every poll. PushUp verifies them
// locally, with no call to the backend, and caches each verified token by
// its bytes until it expires, so a poll with a token already seen costs a
// map lookup.
//
// Claims: "channels" (names, and prefixes ending in "*"), "exp"
// (required), "nbf" (honoured). Signed with HS256 (a shared secret) or
// RS256, ES256 or EdDSA (the backend alone holds the private key).

// tokenCacheSize bounds the verified-token cache: 65,536 tokens of about
// 300 bytes each plus their grants is under 40 MiB at worst, and far more
// than the distinct tokens polling one node within a token's lifetime in
// any deployment we know of. When full, expired tokens go first; if none
// has expired the cache is emptied and refills from the next polls.
const tokenCacheSize = 1 << 16

// tokenMethods are the signing algorithms accepted. Naming them stops
// algorithm confusion ("alg":"none", or an HMAC keyed with a public key).
var tokenMethods = []string{"HS256", "RS256", "ES256", "EdDSA"}

// grant is what a verified token allows: its channels claim, read as
// names and prefixes ending in "*", like -private-channels.
type grant struct {
	channelPatterns
	exp time.Time
	nbf time.Time
}

// subscriberClaims are the claims of a subscriber token.
type subscriberClaims struct {
	Channels []string `json:"channels"`
	jwt.RegisteredClaims
}

// tokenVerifier verifies subscriber tokens and caches the verified ones.
// It is safe for concurrent use.
type tokenVerifier struct {
	keys   jwt.VerificationKeySet // HMAC secrets and public keys
	parser *jwt.Parser
	now    func() time.Time

	mu    sync.RWMutex
	cache map[string]*grant
}

func newTokenVerifier(secrets [][]byte, public []crypto.PublicKey, now func() time.Time) (*tokenVerifier, error) {
	v := &tokenVerifier{now: now, cache: make(map[string]*grant)}
	for _, s := range secrets {
		if len(s) < 32 {
			return nil, fmt.Errorf("api: a subscriber HS256 key must be at least 32 bytes, got %d", len(s))
		}
		v.keys.Keys = append(v.keys.Keys, s)
	}
	for _, k := range public {
		switch k.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			return nil, fmt.Errorf("api: unsupported subscriber public key type %T (want RSA, ECDSA P-256 or Ed25519)", k)
		}
		v.keys.Keys = append(v.keys.Keys, k)
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(tokenMethods),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(now),
	)
	return v, nil
}

// keyFor gives the parser the keys that fit the token's algorithm; the
// library tries each (that is how rotation works: old and new keys are
// both listed until tokens signed with the old one have expired).
func (v *tokenVerifier) keyFor(t *jwt.Token) (any, error) {
	var set jwt.VerificationKeySet
	for _, k := range v.keys.Keys {
		switch t.Method.(type) {
		case *jwt.SigningMethodHMAC:
			if _, ok := k.([]byte); ok {
				set.Keys = append(set.Keys, k)
			}
		case *jwt.SigningMethodRSA:
			if _, ok := k.(*rsa.PublicKey); ok {
				set.Keys = append(set.Keys, k)
			}
		case *jwt.SigningMethodECDSA:
			if _, ok := k.(*ecdsa.PublicKey); ok {
				set.Keys = append(set.Keys, k)
			}
		case *jwt.SigningMethodEd25519:
			if _, ok := k.(ed25519.PublicKey); ok {
				set.Keys = append(set.Keys, k)
			}
		}
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("no key configured for %s", t.Method.Alg())
	}
	return set, nil
}

// Token errors, as clients see them.
var (
	errTokenRequired = &apiError{status: http.StatusUnauthorized, code: "token_required"}
	errTokenExpired  = &apiError{status: http.StatusUnauthorized, code: "token_expired",
		msg: "the subscriber token has expired: get a new one from the application and poll again with the same cursor"}
)

func tokenInvalid(why string) *apiError {
	return &apiError{status: http.StatusUnauthorized, code: "token_invalid", msg: "the subscriber token is not valid: " + why}
}

// verify returns the grant of token, from the cache when it was verified
// before and is still within its validity.
func (v *tokenVerifier) verify(token string) (*grant, error) {
	now := v.now()
	v.mu.RLock()
	g := v.cache[token]
	v.mu.RUnlock()
	if g != nil {
		if !now.Before(g.exp) {
			return nil, errTokenExpired
		}
		if now.Before(g.nbf) {
			return nil, tokenInvalid("it is not valid yet (nbf)")
		}
		return g, nil
	}
	var claims subscriberClaims
	_, err := v.parser.ParseWithClaims(token, &claims, v.keyFor)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, errTokenExpired
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return nil, tokenInvalid("it has no exp claim (required)")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return nil, tokenInvalid("it is not valid yet (nbf)")
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, tokenInvalid("it is not a JWT")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return nil, tokenInvalid("its signature does not verify with any configured key")
	case err != nil:
		return nil, tokenInvalid(strings.TrimPrefix(err.Error(), "token has invalid claims: "))
	}
	g = &grant{channelPatterns: newChannelPatterns(claims.Channels), exp: claims.ExpiresAt.Time}
	if claims.NotBefore != nil {
		g.nbf = claims.NotBefore.Time
	}
	v.store(token, g, now)
	return g, nil
}

// store caches g under token, making room if the cache is full.
func (v *tokenVerifier) store(token string, g *grant, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cache) >= tokenCacheSize {
		for k, e := range v.cache {
			if !now.Before(e.exp) {
				delete(v.cache, k)
			}
		}
		if len(v.cache) >= tokenCacheSize {
			clear(v.cache)
		}
	}
	v.cache[token] = g
}

// cached returns how many tokens the cache holds, for tests and metrics.
func (v *tokenVerifier) cached() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.cache)
}

// channelPatterns matches channel names against names and prefixes ending
// in "*" ("*" alone matches every name).
type channelPatterns struct {
	exact    map[string]struct{}
	prefixes []string
}

func newChannelPatterns(patterns []string) channelPatterns {
	p := channelPatterns{exact: make(map[string]struct{})}
	for _, s := range patterns {
		if pre, ok := strings.CutSuffix(s, "*"); ok {
			p.prefixes = append(p.prefixes, pre)
		} else if s != "" {
			p.exact[s] = struct{}{}
		}
	}
	return p
}

func (p channelPatterns) empty() bool { return len(p.exact) == 0 && len(p.prefixes) == 0 }

func (p channelPatterns) match(name string) bool {
	if _, ok := p.exact[name]; ok {
		return true
	}
	for _, pre := range p.prefixes {
		if strings.HasPrefix(name, pre) {
			return true
		}
	}
	return false
}

// authorizeSubscribe decides whether r may read channels: nil when none of
// them is private, or when r carries a valid token that grants every
// private one. Otherwise an error the client sees as 401 token_required,
// token_invalid or token_expired, or 403 channel_forbidden naming the
// first channel not granted. Every subscribe transport calls it (or
// authorizeHead, its twin for the event engine's fast path) with the
// channels it is about to read, before reading anything; it is checked at
// the start of each poll only, so a token expiring while its poll waits
// does not cut that poll.
func (s *Server) authorizeSubscribe(r *http.Request, channels []string) error {
	first := s.firstPrivate(channels)
	if first == "" {
		return nil
	}
	return s.authorizeToken(s.subscriberToken(r.Header.Get("Authorization"), r.URL.RawQuery, r.Header["Cookie"]), first, channels)
}

// authorizeHead is authorizeSubscribe for a request the event engine
// serves from its head: the same token sources, read from the head, and
// the same answers.
func (s *Server) authorizeHead(h *evhttp.Head, channels []string) error {
	first := s.firstPrivate(channels)
	if first == "" {
		return nil
	}
	var cookies []string
	if h.Cookie != nil && s.cfg.SubscriberCookie != "" {
		cookies = []string{string(h.Cookie)}
	}
	return s.authorizeToken(s.subscriberToken(string(h.Authorization), h.Query, cookies), first, channels)
}

// firstPrivate returns the first of channels that is private, "" if none.
func (s *Server) firstPrivate(channels []string) string {
	if s.private.empty() {
		return ""
	}
	for _, c := range channels {
		if s.private.match(c) {
			return c
		}
	}
	return ""
}

// authorizeToken checks token against channels, of which first is the
// first private one.
func (s *Server) authorizeToken(token, first string, channels []string) error {
	if token == "" {
		e := *errTokenRequired
		e.msg = fmt.Sprintf("channel %q is private: send a subscriber token as \"Authorization: Bearer <token>\" or token=<token>", first)
		return &e
	}
	if s.tokens == nil {
		return tokenInvalid("this server has no subscriber key configured")
	}
	g, err := s.tokens.verify(token)
	if err != nil {
		return err
	}
	for _, c := range channels {
		if s.private.match(c) && !g.match(c) {
			return &apiError{status: http.StatusForbidden, code: "channel_forbidden",
				msg: fmt.Sprintf("the subscriber token does not grant channel %q", c)}
		}
	}
	return nil
}

// subscriberToken finds a request's token: the Authorization header, then
// the token query parameter (of rawQuery), then the configured cookie,
// read from the Cookie header lines as net/http's Request.Cookie reads
// them.
func (s *Server) subscriberToken(authorization, rawQuery string, cookieLines []string) string {
	if authorization != "" {
		if t, ok := cutPrefixFold(authorization, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
	}
	if t := queryParam(rawQuery, "token"); t != "" {
		return t
	}
	if s.cfg.SubscriberCookie != "" && len(cookieLines) > 0 {
		r := http.Request{Header: http.Header{"Cookie": cookieLines}}
		if c, err := r.Cookie(s.cfg.SubscriberCookie); err == nil {
			return c.Value
		}
	}
	return ""
}

// cutPrefixFold is strings.CutPrefix ignoring ASCII case ("bearer" is as
// good as "Bearer", RFC 6750 §2.1 via RFC 9110 §11.1).
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

// queryParam returns the first value of key in a raw query, unescaped; ""
// if absent or malformed. It does not build a map: it runs per poll.
func queryParam(raw, key string) string {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(pair, "=")
		if k == key {
			u, err := unescapeQuery(v)
			if err != nil {
				return ""
			}
			return u
		}
	}
	return ""
}

// publisherKeyOK reports whether the Authorization header carries one of
// the publisher keys. Every key is compared, in constant time, so timing
// tells neither the key nor which one matched.
func publisherKeyOK(header string, keys [][]byte) bool {
	got := []byte(header)
	ok := 0
	for _, k := range keys {
		ok |= subtle.ConstantTimeCompare(got, k)
	}
	return ok == 1
}
