package demo

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// Assets returns the demo page's static files (index.html, app.js,
// style.css), to be served under /demo/. The page loads pushup.js from
// ../pushup.js, the copy the server itself serves.
func Assets() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // "static" is a valid path, and embedded: cannot happen
	}
	return sub
}
