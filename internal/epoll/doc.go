// Package epoll watches many sockets with one Linux epoll set and one
// goroutine, so a server can hold thousands of idle or waiting connections
// without a goroutine (and its stack) for each.
//
// Registrations are of two kinds. One-shot (Add, Rearm): after an event
// for a socket is reported, the socket stays registered but silent until
// Rearm, which costs an epoll_ctl per event; for a listener. Edge-triggered
// (AddEdge): registered once for readable, writable and hang-up, each
// reported when it becomes true, with no system call per event; the
// caller must remember an edge it cannot act on at once, since it does
// not come again. Every registration carries a caller-chosen 64-bit key that comes
// back with its events; the poller never holds Go pointers for the caller.
//
// A Poller is safe for concurrent use. Its handler runs on the poller's
// goroutine and must not block. Callers must Remove a socket before closing
// it: a closed descriptor number can be reused by a new socket.
package epoll
