package demo

import (
	"fmt"
	"time"

	"github.com/pushuphq/pushup/broker"
)

// Config bounds what the question endpoint accepts. A Config is not
// modified after it is passed.
type Config struct {
	// MaxAuthorLen is the longest author name, in bytes (names are ASCII).
	// 32 is room for any handle and keeps "author:<name>" short.
	MaxAuthorLen int
	// MaxTitleLen is the longest title, in characters. 200: a title is a
	// line, not a body.
	MaxTitleLen int
	// MaxTags is the most tags a question may carry. Each tag is one more
	// channel the question is published to; 5, as on Stack Overflow.
	MaxTags int
	// MaxTagLen is the longest tag, in bytes (tags are ASCII).
	MaxTagLen int
	// MaxBodyBytes caps a request body. 4 KiB holds any valid question
	// (a 200-character title is at most 800 bytes of UTF-8) and rejects
	// anything larger before reading it.
	MaxBodyBytes int64
	// TokenKey is the HS256 secret GET /demo/api/token signs subscriber
	// tokens with: one of the keys the server verifies them with
	// (api.Config.SubscriberKeys). Empty: the endpoint answers 404 and the
	// page shows no private channel.
	TokenKey []byte
	// TokenTTL is how long a minted token is valid. Five minutes: short,
	// so the page shows pushup.js renewing it with getToken, and long
	// enough that a renewal is rare next to the polls it covers.
	TokenTTL time.Duration
	// Now is the clock tokens are dated by; nil means time.Now. Tests set it.
	Now func() time.Time
}

// DefaultConfig returns the limits pushupd -demo uses.
func DefaultConfig() Config {
	return Config{
		MaxAuthorLen: 32,
		MaxTitleLen:  200,
		MaxTags:      5,
		MaxTagLen:    32,
		MaxBodyBytes: 4 << 10,
		TokenTTL:     5 * time.Minute,
	}
}

// Validate reports limits that cannot work, including names that would
// not fit in a channel name.
func (c Config) Validate() error {
	switch {
	case c.MaxAuthorLen < 1 || len(authorPrefix)+c.MaxAuthorLen > broker.MaxChannelNameLen:
		return fmt.Errorf("demo: MaxAuthorLen must be 1 to %d, got %d", broker.MaxChannelNameLen-len(authorPrefix), c.MaxAuthorLen)
	case c.MaxTagLen < 1 || len(tagPrefix)+c.MaxTagLen > broker.MaxChannelNameLen:
		return fmt.Errorf("demo: MaxTagLen must be 1 to %d, got %d", broker.MaxChannelNameLen-len(tagPrefix), c.MaxTagLen)
	case c.MaxTitleLen < 1:
		return fmt.Errorf("demo: MaxTitleLen must be positive, got %d", c.MaxTitleLen)
	case c.MaxTags < 1:
		return fmt.Errorf("demo: MaxTags must be positive, got %d", c.MaxTags)
	case c.MaxBodyBytes < 1:
		return fmt.Errorf("demo: MaxBodyBytes must be positive, got %d", c.MaxBodyBytes)
	case len(c.TokenKey) > 0 && len(c.TokenKey) < 32:
		return fmt.Errorf("demo: TokenKey must be at least 32 bytes, as the server's subscriber keys, got %d", len(c.TokenKey))
	case c.TokenTTL <= 0:
		return fmt.Errorf("demo: TokenTTL must be positive, got %s", c.TokenTTL)
	}
	return nil
}
