// Package evhttp is PushUp's event-driven HTTP/1.1 front: an engine that
// accepts connections on raw non-blocking descriptors, watches them in one
// epoll set, reads request heads, writes answer bytes, and hands every
// request it does not serve itself to net/http's http.Server, byte for
// byte. It knows nothing of PushUp's broker: it deals in bytes, a batch key
// and a cancel function (Handler, Conn.Park, Conn.Deliver).
//
// Contract:
//
//   - Strict by construction. The engine serves itself only GET of its
//     paths (Config.FastPath, and Config.StreamPath for streams, with
//     Head.Stream set) over HTTP/1.1 whose head it fully validated: CRLF
//     line endings only, token header names, no control characters in
//     values, exactly one plain Host, no Content-Length, Transfer-Encoding,
//     Expect or Upgrade. The head's end is found by net/http's own rule (the
//     first empty line, LF or CRLF), so the engine and http.Server never
//     disagree on where a request ends. Anything else goes to http.Server
//     unchanged, as soon as it is clearly not a fast-path head.
//   - Deadlines bound a connection, not a read: a head must be whole within
//     ReadHeaderTimeout of its first byte (a hand-back keeps that deadline),
//     an answer may stall at most WriteTimeout, an idle keep-alive
//     connection lives IdleTimeout. A parked request has no deadline of
//     the engine's (its hold is the broker's). Deadlines live in a timing
//     wheel of intrusive lists (deadline.go): setting one is a constant-
//     time link, and it is acted on within two ticks (0.2 s) of its time.
//   - One owner per socket. A connection in csBusy has exactly one owner
//     (the poller, worker or handler that moved it there under Conn.mu);
//     only the
//     owner reads, writes, hands back or closes the descriptor, outside
//     the lock. Anyone else asking to close it while it is busy sets a flag the
//     owner honours when it is done. A descriptor is therefore never closed,
//     and its number never reused, while I/O on it is in flight.
//   - Edge-triggered, registered once. A socket enters the epoll set once
//     (readable, writable, hang-up, EPOLLET) when the engine first waits
//     on it, and leaves it (EPOLL_CTL_DEL) only when it is closed or
//     handed back to http.Server, before the descriptor changes hands: no
//     system call re-arms it per request. An edge is reported once, so
//     Conn.event writes every edge down under Conn.mu (readPending,
//     writePending, hup) whatever the state, and whoever leaves csBusy
//     acts on what was written down before giving the connection up:
//     goIdle reads at once if the socket became readable meanwhile (the
//     re-poll that came while the answer was written, without an epoll
//     round trip), a partial write retries if room was reported meanwhile,
//     and Park or a stream ends a connection that hung up meanwhile. A read
//     that fills the buffer may have left more: readPending stays set.
//     An owner serves at most maxServeDepth requests in a row this way;
//     the next goes to a worker.
//   - Parked connections cost a record (a 128-byte Conn; its buffers
//     exist only while they hold bytes): no goroutine, no buffer. Answers are
//     queued to GOMAXPROCS workers in batches (Handler.Batch), never written
//     on the deliverer's goroutine. Everything else (reads, ServeFast,
//     parks, drains, deadlines) runs on the poller goroutine as events come:
//     none of it waits, and a hand-off per event would cost a wake-up.
//     The poller first writes its share of the answers queued when it
//     wakes, so a fan-out's answers go out before the re-polls they caused
//     are served.
//   - Socket reads and writes are raw system calls (fdio.go): the sockets
//     are non-blocking, so no call waits and none needs the runtime's
//     system-call bookkeeping; only epoll_wait does.
//   - Streams (Conn.StartStream) cost the same between writes. The engine
//     ends a stream on hang-up, write failure, backlog overflow, a socket
//     that takes nothing for WriteTimeout, or Shutdown, and tells the
//     handler once (Canceler, or StreamEnder with the reason).
//   - Limit: connections accepted over Config.Limit are marked
//     (Conn.OverLimit); past its margin they get a canned 503 unread.
//
// Concurrency: Engine and Conn methods are safe for concurrent use, except
// that Reply, Park and AttachHijacked may be called only by the
// connection's owner (the Handler.ServeFast call, or the holder of
// Engine.NewConn), and give ownership up (Reply, Park). Deliver and Close
// may be called from any goroutine and never block. Handler methods must
// not block: ServeFast runs on the engine's poller goroutine, Encode on its
// workers and poller, Batch on the goroutine that calls Deliver. A
// ServeFast that must wait hands the connection to a goroutine of its
// own, which keeps ownership until it calls Reply or Park.
//
// Lock order (see also docs/locksordering.txt): Conn.mu -> deadlineMu,
// Conn.mu -> registry.mu; qmu, registry.mu and lmu are otherwise taken
// alone. No lock
// is held across a read or write of a socket; Handler.Encode and the
// cancel function run with no engine lock held.
package evhttp
