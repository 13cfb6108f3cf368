package channel

// WaitKey orders waiters: by deadline (Unix nanoseconds), then by a unique
// id so two waiters with the same deadline are distinct keys.
type WaitKey struct {
	Deadline int64
	ID       uint64
}

// Less orders keys by deadline, then id.
func (k WaitKey) Less(o WaitKey) bool {
	if k.Deadline != o.Deadline {
		return k.Deadline < o.Deadline
	}
	return k.ID < o.ID
}

// Waiter is a subscription parked on a channel until a message arrives or
// its deadline passes. The channel only orders and stores waiters; the
// broker decides what waking one means. WaitKey must not change while the
// waiter is in a channel.
type Waiter interface {
	WaitKey() WaitKey
}
