// Package broker is PushUp's message queue: the registry of channels and the
// batch publish and batch subscribe operations over them.
//
// Channels are created explicitly (Create, Renew) or, when
// Config.ImplicitChannels is set, on first publish or subscribe; they are
// renewed, closed (CloseChannel) and expire after Config.ChannelTTL with no
// publication and no subscriber. A batch publish stores one message (one id,
// one hybrid-logical-clock time) in each of its channels. A batch subscribe
// merges its channels in time order, each message once.
//
// # Positions and cursors
//
// Every message carries its origin (the node and boot that published it), a
// per-origin sequence number and a timestamp. The broker exposes an origin's
// messages only up to its committed position, the end of the contiguous
// prefix of that origin it holds, and a Cursor records a position per origin.
// A reader that passes back the cursor of its last answer therefore never
// gets a message twice and never misses one that was committed, even when
// publications commit concurrently or arrive from other nodes out of time
// order. What the cursor cannot bring back is a message evicted from the
// cache before the reader asked (Result.Truncated says so).
//
// # Concurrency
//
// A Broker is safe for concurrent use. Waiting costs no goroutine: a parked
// Subscription is a record in its channels' deadline-ordered waiter trees,
// answered by whichever publisher, closer or sweeper gets to it first, via
// the deliver function the subscriber supplied. deliver must not block.
// The broker never calls deliver while holding a lock and does no I/O.
// A wait parked by SubscribeRecycled is cancelled only through its Ticket:
// its record may serve another wait once deliver returns.
//
// One goroutine (the sweeper, started by New and stopped by Close) expires
// waiters, evicts expired messages and closes idle channels, following one
// schedule ordered by due time.
//
// Lock order (a goroutine holding one may take only those after it):
//
//	Broker.commitMu -> Broker.mu -> channel lock -> Subscription.mu
//
// The schedule's and the origin table's locks are leaves: held for one
// operation, never while taking another lock. The idempotency keys and the
// cache budget's queue have no lock of their own: commitMu guards them.
// Subscription.unpark, which may drop a channel that only waiters kept
// (taking commitMu), runs with no broker lock held.
// Config.Journal's Record and Forget are called under commitMu and must
// only queue (see Journal); Wait is called outside every lock.
//
// # Persistence and shutdown
//
// With a Journal every committed event is also handed to it, and Recover
// replays a journal into a fresh broker before it serves (journal.go).
// Drain prepares a shutdown: publishers are refused at once, waiting
// subscribers are answered spread over time with a retry hint (drain.go).
//
// # What subscribers can make the broker hold
//
// Subscribing needs no key, so a subscribe creates no channel it does not
// wait on: channels it must create to wait are ephemeral, dropped when
// their last waiter leaves, and do not count against MaxChannels for
// publishers. Cached bytes over all channels are bounded by
// Config.MaxCacheBytes (oldest evicted first), answers by
// Config.MaxAnswerBytes.
package broker
