package demo

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pushuphq/pushup/broker"
)

// Channel name prefixes, after the paper's example: a question by John
// tagged c++ and java goes to "author:John", "tag:c++" and "tag:java".
const (
	authorPrefix = "author:"
	tagPrefix    = "tag:"
)

// Characters allowed besides ASCII letters and digits. Both sets are
// subsets of broker.ChannelNameChars without ':' '@' '~' '=', so a name
// can never smuggle another prefix into its channel name.
const (
	authorChars = "_-."
	tagChars    = "+-._"
)

// Draft is a question as a browser posts it: the JSON body of
// POST /demo/api/questions.
type Draft struct {
	Author string   `json:"author"`
	Title  string   `json:"title"`
	Tags   []string `json:"tags"`
}

// Question is a validated question, ready to publish. Create it with
// NewQuestion.
type Question struct {
	Author string
	Title  string
	Tags   []string
}

// Error is a draft that fails validation. Code is the error code the HTTP
// API answers with, such as "invalid_tag"; Message explains it to a person.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

func invalid(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// NewQuestion validates d against cfg's limits. It trims the spaces around
// every field and lowercases tags ("Go" and "go" are one topic, so they
// must be one channel); anything else not allowed is rejected with an
// *Error, never silently changed or cut short.
func NewQuestion(d Draft, cfg Config) (Question, error) {
	q := Question{Author: strings.TrimSpace(d.Author), Title: strings.TrimSpace(d.Title)}

	if !validName(q.Author, cfg.MaxAuthorLen, false) {
		return Question{}, invalid("invalid_author", "author %q: 1 to %d characters from A-Z a-z 0-9 %s",
			q.Author, cfg.MaxAuthorLen, authorChars)
	}

	switch n := utf8.RuneCountInString(q.Title); {
	case !utf8.ValidString(q.Title):
		return Question{}, invalid("invalid_title", "title is not valid UTF-8")
	case n == 0:
		return Question{}, invalid("invalid_title", "title is required")
	case n > cfg.MaxTitleLen:
		return Question{}, invalid("invalid_title", "title is %d characters long; at most %d allowed", n, cfg.MaxTitleLen)
	case strings.ContainsFunc(q.Title, unicode.IsControl):
		return Question{}, invalid("invalid_title", "title must be one line of text, without control characters")
	}

	switch {
	case len(d.Tags) == 0:
		return Question{}, invalid("no_tags", "at least one tag is required")
	case len(d.Tags) > cfg.MaxTags:
		return Question{}, invalid("too_many_tags", "%d tags given; at most %d allowed", len(d.Tags), cfg.MaxTags)
	}
	q.Tags = make([]string, 0, len(d.Tags))
	for _, raw := range d.Tags {
		t := strings.ToLower(strings.TrimSpace(raw))
		if !validName(t, cfg.MaxTagLen, true) {
			return Question{}, invalid("invalid_tag", "tag %q: 1 to %d characters from a-z 0-9 %s (tags are case-insensitive)",
				raw, cfg.MaxTagLen, tagChars)
		}
		for _, seen := range q.Tags {
			if seen == t {
				return Question{}, invalid("duplicate_tag", "tag %q is given twice (tags are case-insensitive)", t)
			}
		}
		q.Tags = append(q.Tags, t)
	}
	return q, nil
}

// validName reports whether s is 1 to max ASCII letters (lowercase only
// for tags), digits and the extra characters of its kind.
func validName(s string, max int, tag bool) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	extra := authorChars
	if tag {
		extra = tagChars
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case 'A' <= c && c <= 'Z' && !tag:
		case strings.IndexByte(extra, c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Channels returns the channels q is published to: "author:<name>", then
// "tag:<t>" for each tag.
func (q Question) Channels() []string {
	chs := make([]string, 0, 1+len(q.Tags))
	chs = append(chs, authorPrefix+q.Author)
	for _, t := range q.Tags {
		chs = append(chs, tagPrefix+t)
	}
	return chs
}

// payload is the message data of a question, as pages receive it.
type payload struct {
	Type   string   `json:"type"`
	Author string   `json:"author"`
	Title  string   `json:"title"`
	Tags   []string `json:"tags"`
}

// Publication returns q as one publication to all of q.Channels(), so it
// is one message with one id and one time in every channel. Its data is
// {"type":"question","author":..,"title":..,"tags":[..]}.
func (q Question) Publication() broker.Publication {
	// Marshalling strings and a string slice cannot fail.
	data, _ := json.Marshal(payload{Type: "question", Author: q.Author, Title: q.Title, Tags: q.Tags})
	return broker.Publication{Channels: q.Channels(), Data: data}
}
