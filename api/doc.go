// Package api is PushUp's HTTP front: the v1 JSON API for publishers
// (publish, channel create/renew/info/close), the long-poll subscribe
// endpoint for browsers, pushup.js (the browser client, GET /pushup.js),
// health and Prometheus metrics, an index at GET /, and the plug-ins of
// Config.Plugins (applications beside the API under paths of their own,
// such as the Q&A demo of package web/demo), of which it knows nothing
// but the Plugin interface.
//
// Server owns the http.Server and its timeouts, maps broker errors to
// status codes in one place (errors.go), and runs the graceful shutdown:
// stop accepting, answer every waiting subscriber with its cursor, wait for
// handlers. Its handlers are safe for concurrent use. A waiting subscriber
// costs a Subscription record in the broker and, depending on
// Config.Model, a parked connection record in the event loop
// (ModelEvent), the handler goroutine that waits for the broker's answer
// (ModelGoroutine), or that goroutine plus an OS thread of its own
// (ModelThread, the paper's multithreaded baseline).
package api
