// Package channel implements one PushUp message stream: the cache of recent
// messages and the subscriptions waiting for the next one.
//
// Messages are kept in a B-tree ordered by their hybrid-logical-clock
// timestamp (ties between origins broken by origin id), so "everything after
// position P" is one ordered range scan. Waiting subscriptions live in a
// second B-tree ordered by deadline, so expiring them is one sweep over a
// range rather than one runtime timer per waiter. The cache is bounded both
// by age (Config.MessageTTL) and by count (Config.MaxMessages); what was
// evicted is remembered per origin so a reader can be told its position is
// truncated.
//
// A Channel is safe for concurrent use. Its methods take the channel's own
// lock and never call out while holding it, except for the short callbacks
// passed to TakeWaiters and Read, which must not block or take other
// channels' locks. The channel knows nothing about what a waiter means (the
// broker owns that), nor about the network.
package channel
