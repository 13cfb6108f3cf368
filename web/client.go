package web

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
)

//go:embed pushup.js
var clientJS string

// clientETag is computed once: the content never changes while the
// process runs.
var clientETag = func() string {
	sum := sha256.Sum256([]byte(clientJS))
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
}()

// ClientJS returns pushup.js, the browser client library.
func ClientJS() string { return clientJS }

// ClientETag returns a strong HTTP entity tag for ClientJS, derived from
// its content: caches revalidate cheaply, and a server with a different
// pushup.js never answers 304 to a browser holding the old one.
func ClientETag() string { return clientETag }
