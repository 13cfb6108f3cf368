package broker

import (
	"fmt"
)

// MaxChannelNameLen is the longest channel name accepted, in bytes.
const MaxChannelNameLen = 128

// ChannelNameChars lists the characters allowed in channel names besides
// ASCII letters and digits. They need no escaping in a URL path segment and
// none is the comma that separates names in a subscribe query; ':' and '@'
// allow names like "tag:go" or "user@example".
const ChannelNameChars = "_-.:@~+="

var nameChar [256]bool

func init() {
	for c := 'a'; c <= 'z'; c++ {
		nameChar[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		nameChar[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		nameChar[c] = true
	}
	for _, c := range ChannelNameChars {
		nameChar[c] = true
	}
}

// ValidChannelName reports whether name is 1 to MaxChannelNameLen bytes of
// ASCII letters, digits and ChannelNameChars.
func ValidChannelName(name string) bool {
	if len(name) == 0 || len(name) > MaxChannelNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !nameChar[name[i]] {
			return false
		}
	}
	return true
}

// checkNames validates a request's channel list: at least one name, at
// most limit, each valid, none twice.
func checkNames(names []string, limit int) error {
	if len(names) == 0 {
		return ErrNoChannels
	}
	if len(names) > limit {
		return fmt.Errorf("%w: %d given, at most %d allowed", ErrTooManyChannels, len(names), limit)
	}
	for _, n := range names {
		if !ValidChannelName(n) {
			return fmt.Errorf("%w: %q (1-%d characters from A-Z a-z 0-9 %s)",
				ErrInvalidChannel, n, MaxChannelNameLen, ChannelNameChars)
		}
	}
	if dup, ok := duplicate(names); ok {
		return fmt.Errorf("%w: %q", ErrDuplicateChannel, dup)
	}
	return nil
}

// duplicate returns a name that appears twice. Short lists, the usual
// case, are compared pairwise: no allocation on every subscribe.
func duplicate(names []string) (string, bool) {
	if len(names) <= 16 {
		for i, n := range names {
			for _, m := range names[:i] {
				if m == n {
					return n, true
				}
			}
		}
		return "", false
	}
	seen := make(map[string]struct{}, len(names))
	for _, n := range names {
		if _, dup := seen[n]; dup {
			return n, true
		}
		seen[n] = struct{}{}
	}
	return "", false
}
