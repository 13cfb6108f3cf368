package demo

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pushuphq/pushup/api"
)

// UserPrefix starts each person's private channel: "user:ann" carries
// ann's notifications. The server must list UserPrefix+"*" among its
// private channels (pushupd -demo does) for it to be private.
const UserPrefix = "user:"

// Token is the answer of GET /demo/api/token.
type Token struct {
	// Token is the JWT: it grants Channels until Expires.
	Token    string   `json:"token"`
	Channels []string `json:"channels"`
	// Expires is the token's exp, in Unix milliseconds like message times.
	Expires int64 `json:"expires"`
}

// getToken serves GET /demo/api/token?name=<name>: a subscriber token
// granting "user:<name>" and nothing else, valid for TokenTTL. Here the
// demo stands in for the application's backend, which mints tokens only
// for the person signed in; the demo has no sign-in, so it mints one for
// whatever name is asked. That shows the mechanism, not a login.
func (p *Plugin) getToken(w http.ResponseWriter, r *http.Request) error {
	if len(p.cfg.TokenKey) == 0 {
		return &api.ClientError{Status: http.StatusNotFound, Code: "not_found",
			Message: "this demo has no subscriber key to mint tokens with: start pushupd with -demo and -subscriber-key"}
	}
	name := r.URL.Query().Get("name")
	if !validName(name, p.cfg.MaxAuthorLen, false) {
		return &api.ClientError{Code: "invalid_name", Message: fmt.Sprintf("name %q: 1 to %d characters from A-Z a-z 0-9 %s",
			name, p.cfg.MaxAuthorLen, authorChars)}
	}
	now := time.Now()
	if p.cfg.Now != nil {
		now = p.cfg.Now()
	}
	exp := now.Add(p.cfg.TokenTTL)
	channels := []string{UserPrefix + name}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"channels": channels,
		"exp":      exp.Unix(),
		"iat":      now.Unix(),
	}).SignedString(p.cfg.TokenKey)
	if err != nil {
		return err // a []byte key cannot fail HS256: a bug, answered 500
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// A token is a credential: no cache, shared or private, may keep it.
	h.Set("Cache-Control", "no-store")
	// exp is in whole seconds: say the instant the server will enforce.
	return json.NewEncoder(w).Encode(Token{Token: signed, Channels: channels, Expires: exp.Unix() * 1000})
}
