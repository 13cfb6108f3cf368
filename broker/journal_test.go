package broker

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/channel"
)

// fakeJournal records what the broker hands it; Wait fails with err.
type fakeJournal struct {
	mu     sync.Mutex
	events []Event
	forgot []string
	waited []uint64
	err    error
}

func (j *fakeJournal) Record(ev Event) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, ev)
	return uint64(len(j.events))
}

func (j *fakeJournal) Forget(name string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.forgot = append(j.forgot, name)
}

func (j *fakeJournal) Wait(t uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.waited = append(j.waited, t)
	return j.err
}

func TestJournalGetsEveryCommittedEventInOrder(t *testing.T) {
	j := &fakeJournal{}
	b := newTestBroker(t, func(c *Config) { c.Journal = j })
	publish(t, b, pub(1, "a"), pub(2, "a", "b"))
	_, _, err := b.Renew("c", time.Hour)
	require.NoError(t, err)
	m := channel.NewMessage(9, 1, b.Clock().Now(), []string{"a"}, []byte("3"))
	_, err = b.Apply([]Event{{Kind: EventPublish, Origin: 9, Seq: 1, TS: m.TS, Message: m}})
	require.NoError(t, err)
	_, err = b.CloseChannel("c")
	require.NoError(t, err)

	j.mu.Lock()
	defer j.mu.Unlock()
	kinds := []EventKind{}
	for _, ev := range j.events {
		kinds = append(kinds, ev.Kind)
	}
	assert.Equal(t, []EventKind{EventPublish, EventPublish, EventRenew, EventPublish, EventClose}, kinds)
	assert.Equal(t, uint64(9), j.events[3].Origin, "events applied from peers are journaled too")
	assert.Equal(t, []uint64{2, 3, 5}, j.waited, "publish, renew and close wait for their last event")
}

func TestPublishSaysWhenTheJournalFailed(t *testing.T) {
	j := &fakeJournal{err: errors.New("disk full")}
	b := newTestBroker(t, func(c *Config) { c.Journal = j })
	_, err := b.Publish(pub(1, "a"))
	assert.ErrorIs(t, err, ErrNotDurable)
	assert.ErrorContains(t, err, "disk full")
}
