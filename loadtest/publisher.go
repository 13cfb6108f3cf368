package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Index identifies the publisher in its payloads, 0 to
	// MaxPublishers-1; give each publisher of a run its own.
	Index int
	// Targets are server base URLs; message k goes to Targets[k %
	// len(Targets)]. Empty means the servers the run started. Publish and
	// subscribe targets may differ (publish to nodes, subscribe through a
	// load balancer).
	Targets []string
	// Channels each message is published to (one message, one id, in
	// every one of them).
	Channels []string
	// Messages is how many messages to publish, at most MaxMessages.
	Messages int
	// Interval is the time between two publishes, from the start of one
	// to the start of the next. The first is sent at once.
	Interval time.Duration
	// PayloadSize is the size in bytes of each message's data (the JSON
	// payload with its pad), at least MinPayloadSize.
	PayloadSize int
	// Timeout bounds one publish request.
	Timeout time.Duration
	// PublisherKey, if the server requires one, is sent as a bearer token.
	PublisherKey string
}

// DefaultPublisherConfig returns the fan-out schedule of issue 3: five
// 256-byte messages two seconds apart to channel "loadtest".
func DefaultPublisherConfig() PublisherConfig {
	return PublisherConfig{
		Channels:    []string{"loadtest"},
		Messages:    5,
		Interval:    2 * time.Second,
		PayloadSize: 256,
		Timeout:     10 * time.Second,
	}
}

// Validate reports a configuration that cannot work.
func (c PublisherConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: publisher: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Index < 0 || c.Index >= MaxPublishers:
		return bad("Index must be 0 to %d, got %d", MaxPublishers-1, c.Index)
	case len(c.Channels) == 0:
		return bad("no Channels")
	case c.Messages < 1 || c.Messages > MaxMessages:
		return bad("Messages must be 1 to %d, got %d", MaxMessages, c.Messages)
	case c.Interval < 0:
		return bad("Interval must not be negative, got %s", c.Interval)
	case c.PayloadSize < MinPayloadSize:
		return bad("PayloadSize %d is below the minimum of %d bytes (the timestamp, sequence number and pad field)", c.PayloadSize, MinPayloadSize)
	case c.Timeout <= 0:
		return bad("Timeout must be positive, got %s", c.Timeout)
	}
	return nil
}

// PublishRecord is one publish request and its outcome.
type PublishRecord struct {
	Publisher int   `json:"publisher"`
	Seq       int64 `json:"seq"`
	// SentAt is the timestamp in the payload, Unix ns.
	SentAt   int64    `json:"sent_at_ns"`
	Channels []string `json:"-"`
	Target   string   `json:"target"`
	// Status is the HTTP status, 0 if the request failed.
	Status int `json:"status"`
	// ID is the message id the server gave.
	ID  string `json:"id,omitempty"`
	Err string `json:"error,omitempty"`
	// Latency is the time to get the answer to the publish request.
	Latency time.Duration `json:"latency_ns"`
}

// OK reports whether the server accepted the message.
func (r PublishRecord) OK() bool { return r.Status == http.StatusCreated }

// Publisher posts load-test payloads on a schedule. Create it with
// NewPublisher and call Run once.
type Publisher struct {
	cfg       PublisherConfig
	prefix    []byte // {"channels":[...],"data":
	transport *http.Transport
	client    *http.Client
	sent      atomic.Int64
	// run makes Idempotency-Keys unique to this run: sweeps publish
	// seq 1, 2, ... again to the same daemon within the key TTL.
	run string
}

// NewPublisher validates cfg and prepares the publisher.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Targets) == 0 {
		return nil, fmt.Errorf("%w: publisher: no Targets", ErrInvalidConfig)
	}
	for _, t := range cfg.Targets {
		if _, err := resolveTarget(context.Background(), t); err != nil {
			return nil, err
		}
	}
	cfg.Channels = append([]string(nil), cfg.Channels...)
	cfg.Targets = append([]string(nil), cfg.Targets...)
	chs, _ := json.Marshal(cfg.Channels)
	// Publishing is a handful of requests; net/http's client is fine here.
	tr := &http.Transport{MaxIdleConnsPerHost: 2, DisableCompression: true}
	return &Publisher{
		cfg:       cfg,
		prefix:    append(append([]byte(`{"channels":`), chs...), `,"data":`...),
		transport: tr,
		client:    &http.Client{Transport: tr, Timeout: cfg.Timeout},
		run:       strconv.FormatUint(rand.Uint64(), 36),
	}, nil
}

// Sent is how many publish requests have been sent so far.
func (p *Publisher) Sent() int64 { return p.sent.Load() }

// Run publishes cfg.Messages messages on schedule and returns a record of
// each, failed ones included. It stops early, returning what it sent, if
// ctx ends. It closes its connections before returning.
func (p *Publisher) Run(ctx context.Context) []PublishRecord {
	defer p.transport.CloseIdleConnections()
	records := make([]PublishRecord, 0, p.cfg.Messages)
	start := time.Now()
	body := make([]byte, 0, len(p.prefix)+p.cfg.PayloadSize+2)
	for k := range p.cfg.Messages {
		if !sleep(ctx, time.Until(start.Add(time.Duration(k)*p.cfg.Interval))) {
			break
		}
		rec := PublishRecord{
			Publisher: p.cfg.Index,
			Seq:       int64(k),
			Channels:  p.cfg.Channels,
			Target:    p.cfg.Targets[k%len(p.cfg.Targets)],
		}
		rec.SentAt = time.Now().UnixNano()
		var err error
		body, err = AppendPayload(append(body[:0], p.prefix...),
			Payload{Publisher: rec.Publisher, Seq: rec.Seq, SentAt: rec.SentAt}, p.cfg.PayloadSize)
		if err == nil {
			body = append(body, '}')
			p.sent.Add(1)
			err = p.post(ctx, &rec, body)
		}
		if err != nil {
			rec.Err = err.Error()
		}
		rec.Latency = time.Duration(time.Now().UnixNano() - rec.SentAt)
		records = append(records, rec)
	}
	return records
}

// post sends one publication and fills in the answer.
func (p *Publisher) post(ctx context.Context, rec *PublishRecord, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rec.Target+"/v1/publish", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if p.cfg.PublisherKey != "" {
		req.Header.Set("Authorization", "Bearer "+p.cfg.PublisherKey)
	}
	// A publication retried (by a proxy or a later version of this
	// tester) after a timeout is then stored once, not twice.
	req.Header.Set("Idempotency-Key", p.run+"-"+strconv.Itoa(rec.Publisher)+"-"+strconv.FormatInt(rec.Seq, 10))
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	rec.Status = resp.StatusCode
	if err != nil {
		return err
	}
	if !rec.OK() {
		return fmt.Errorf("%w: %d: %s", ErrUnexpectedStatus, resp.StatusCode, truncate(bytes.TrimSpace(b)))
	}
	var ans struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return fmt.Errorf("%w: publish answer: %v", ErrMalformedResponse, err)
	}
	rec.ID = ans.ID
	return nil
}

// runPublishers runs each publisher on a goroutine of its own and
// returns all their records, the publishers' in order.
func runPublishers(ctx context.Context, pubs []*Publisher) []PublishRecord {
	var wg sync.WaitGroup
	recs := make([][]PublishRecord, len(pubs))
	for i, p := range pubs {
		wg.Go(func() { recs[i] = p.Run(ctx) })
	}
	wg.Wait()
	return slices.Concat(recs...)
}
