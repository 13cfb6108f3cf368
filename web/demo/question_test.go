package demo

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/broker"
)

func TestNewQuestionValidates(t *testing.T) {
	cfg := DefaultConfig()
	tags := func(ts ...string) []string { return ts }
	for _, tc := range []struct {
		name string
		d    Draft
		code string // "" for valid
		want Question
	}{
		{name: "valid", d: Draft{"John", "How do I long-poll?", tags("c++", "java")},
			want: Question{"John", "How do I long-poll?", tags("c++", "java")}},
		{name: "spaces trimmed, tags lowercased", d: Draft{" ann ", "  Why?  ", tags(" Go ", "JavaScript")},
			want: Question{"ann", "Why?", tags("go", "javascript")}},
		{name: "every allowed character", d: Draft{"A-z_0.9", "t", tags("a+b-c.d_e9")},
			want: Question{"A-z_0.9", "t", tags("a+b-c.d_e9")}},
		{name: "longest author", d: Draft{strings.Repeat("a", 32), "t", tags("go")},
			want: Question{strings.Repeat("a", 32), "t", tags("go")}},
		{name: "longest title, in characters not bytes", d: Draft{"ann", strings.Repeat("é", 200), tags("go")},
			want: Question{"ann", strings.Repeat("é", 200), tags("go")}},
		{name: "most tags", d: Draft{"ann", "t", tags("a", "b", "c", "d", "e")},
			want: Question{"ann", "t", tags("a", "b", "c", "d", "e")}},
		{name: "emoji title", d: Draft{"ann", "Why 👩‍💻?", tags("go")},
			want: Question{"ann", "Why 👩‍💻?", tags("go")}},

		{name: "no author", d: Draft{"", "t", tags("go")}, code: "invalid_author"},
		{name: "blank author", d: Draft{"   ", "t", tags("go")}, code: "invalid_author"},
		{name: "author too long", d: Draft{strings.Repeat("a", 33), "t", tags("go")}, code: "invalid_author"},
		{name: "author with a space", d: Draft{"ann b", "t", tags("go")}, code: "invalid_author"},
		{name: "author smuggling a prefix", d: Draft{"x:tag:go", "t", tags("go")}, code: "invalid_author"},
		{name: "author with @", d: Draft{"ann@example", "t", tags("go")}, code: "invalid_author"},
		{name: "author not ASCII", d: Draft{"zoë", "t", tags("go")}, code: "invalid_author"},
		{name: "no title", d: Draft{"ann", "", tags("go")}, code: "invalid_title"},
		{name: "blank title", d: Draft{"ann", " \t ", tags("go")}, code: "invalid_title"},
		{name: "title too long", d: Draft{"ann", strings.Repeat("é", 201), tags("go")}, code: "invalid_title"},
		{name: "title on two lines", d: Draft{"ann", "one\ntwo", tags("go")}, code: "invalid_title"},
		{name: "title with a NUL", d: Draft{"ann", "a\x00b", tags("go")}, code: "invalid_title"},
		{name: "title not UTF-8", d: Draft{"ann", "a\xffb", tags("go")}, code: "invalid_title"},
		{name: "no tags", d: Draft{"ann", "t", nil}, code: "no_tags"},
		{name: "empty tag list", d: Draft{"ann", "t", tags()}, code: "no_tags"},
		{name: "too many tags", d: Draft{"ann", "t", tags("a", "b", "c", "d", "e", "f")}, code: "too_many_tags"},
		{name: "empty tag", d: Draft{"ann", "t", tags("go", "")}, code: "invalid_tag"},
		{name: "tag with #", d: Draft{"ann", "t", tags("c#")}, code: "invalid_tag"},
		{name: "tag with a colon", d: Draft{"ann", "t", tags("author:john")}, code: "invalid_tag"},
		{name: "tag with a comma", d: Draft{"ann", "t", tags("a,b")}, code: "invalid_tag"},
		{name: "tag too long", d: Draft{"ann", "t", tags(strings.Repeat("a", 33))}, code: "invalid_tag"},
		{name: "same tag twice", d: Draft{"ann", "t", tags("go", "rust", "go")}, code: "duplicate_tag"},
		{name: "same tag in two cases", d: Draft{"ann", "t", tags("Go", "go")}, code: "duplicate_tag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := NewQuestion(tc.d, cfg)
			if tc.code == "" {
				require.NoError(t, err)
				assert.Equal(t, tc.want, q)
				return
			}
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tc.code, e.Code)
			assert.NotEmpty(t, e.Message, "a message a person can act on")
			assert.Equal(t, Question{}, q)
		})
	}
}

func TestQuestionIsOnePublicationToAuthorAndTags(t *testing.T) {
	q, err := NewQuestion(Draft{"John", `Say "hi" <b>`, []string{"c++", "java"}}, DefaultConfig())
	require.NoError(t, err)
	assert.Equal(t, []string{"author:John", "tag:c++", "tag:java"}, q.Channels())
	for _, ch := range q.Channels() {
		assert.True(t, broker.ValidChannelName(ch), ch)
	}
	p := q.Publication()
	assert.Equal(t, q.Channels(), p.Channels)
	assert.JSONEq(t, `{"type":"question","author":"John","title":"Say \"hi\" <b>","tags":["c++","java"]}`, string(p.Data))
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	for _, tc := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.MaxAuthorLen = 0 }, "MaxAuthorLen"},
		{func(c *Config) { c.MaxAuthorLen = broker.MaxChannelNameLen }, "MaxAuthorLen"}, // "author:" would not fit
		{func(c *Config) { c.MaxTagLen = 0 }, "MaxTagLen"},
		{func(c *Config) { c.MaxTagLen = broker.MaxChannelNameLen - 3 }, "MaxTagLen"},
		{func(c *Config) { c.MaxTitleLen = 0 }, "MaxTitleLen"},
		{func(c *Config) { c.MaxTags = 0 }, "MaxTags"},
		{func(c *Config) { c.MaxBodyBytes = 0 }, "MaxBodyBytes"},
		{func(c *Config) { c.TokenKey = []byte("short") }, "TokenKey"},
		{func(c *Config) { c.TokenTTL = 0 }, "TokenTTL"},
	} {
		c := DefaultConfig()
		tc.change(&c)
		err := c.Validate()
		require.Error(t, err, tc.want)
		assert.Contains(t, err.Error(), tc.want)
	}
	c := DefaultConfig()
	c.MaxTagLen = broker.MaxChannelNameLen - len("tag:")
	assert.NoError(t, c.Validate(), "the longest tag that fits")
}

func TestAssetsHoldThePage(t *testing.T) {
	for _, name := range []string{"index.html", "app.js", "style.css"} {
		b, err := fsReadFile(name)
		require.NoError(t, err, name)
		assert.NotEmpty(t, b, name)
	}
	index, _ := fsReadFile("index.html")
	assert.Contains(t, string(index), `src="app.js"`)
	app, _ := fsReadFile("app.js")
	assert.Contains(t, string(app), `from "../pushup.js"`, "the page uses the client the server serves")
}

func fsReadFile(name string) ([]byte, error) { return fs.ReadFile(Assets(), name) }
