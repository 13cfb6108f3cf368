package broker

import "github.com/pushuphq/pushup/channel"

// Position returns the cursor of "now" for channels: a reader that passes
// it back gets exactly the messages committed after this call, on this node
// or, once they replicate, on any other. It checks the names as Subscribe
// does and, with Config.ImplicitChannels, creates missing channels, so a
// page rendered with this cursor can subscribe to a channel nobody has
// published to yet.
//
// Origins this node has not seen commit anything yet are not listed; their
// messages all count as after the position, as with SubscribeRequest.FromNow.
func (b *Broker) Position(channels []string) (Cursor, error) {
	if err := checkNames(channels, b.cfg.MaxChannelsPerRequest); err != nil {
		return Cursor{}, err
	}
	refs, err := b.resolve(channels, b.cfg.ImplicitChannels, true)
	if err != nil {
		return Cursor{}, err
	}
	now := b.now()
	for _, r := range refs {
		r.Touch(now)
	}
	return Cursor{Pos: b.origins.snapshot()}, nil
}

// Past returns the cursor just after msgs, a prefix of an answer read from
// c: each origin moves to the last of its messages in msgs and no further,
// since later ones of it may follow in the same answer. Streams use it to
// give every message its own resume position; the answer's Cursor is the
// position after the whole answer, which may be further.
func (c Cursor) Past(msgs []*channel.Message) Cursor { return c.advancePast(msgs) }
