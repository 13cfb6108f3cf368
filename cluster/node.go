package cluster

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/pushuphq/pushup/broker"
)

// ErrNotStarted is returned by operations that need a started node.
var ErrNotStarted = errors.New("cluster: node not started")

// maxBuffered bounds the events a node keeps while it restores a snapshot;
// beyond it they are dropped and repaired afterwards.
const maxBuffered = 1_000_000

// Node is one member of a PushUp cluster. Create it with New, give its
// Commit method to the broker as Config.OnCommit, then Start it with the
// broker once the HTTP server (which serves Handler) is up.
type Node struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client // repairs and snapshots
	host   string       // this node's HTTP host:port, for streams

	b       *broker.Broker
	ml      *memberlist.Memberlist
	bq      *memberlist.TransmitLimitedQueue
	ready   atomic.Bool
	closing atomic.Bool

	// outbox holds this node's committed events until the replicator
	// takes them (Commit runs under the broker's commit lock, so it only
	// appends).
	omu    sync.Mutex
	outbox []broker.Event
	okick  chan struct{}

	// Until the snapshot is restored, incoming events wait here.
	bmu      sync.Mutex
	applying bool
	buffered []broker.Event

	pmu   sync.Mutex
	peers map[string]*peer
	// failed are members seen failed (not left) that the rejoin loop
	// keeps trying to reach, by name.
	failed map[string]failedMember

	stop chan struct{}
	wg   sync.WaitGroup

	// transport, when set (tests), replaces memberlist's network
	// transport.
	transport memberlist.Transport
	// tune, when set (tests), adjusts memberlist's configuration last.
	tune func(*memberlist.Config)

	// Counters for Status and metrics.
	received, repaired, skipped, bufDropped atomic.Uint64
	// gossipDropped counts broadcasts pruned from a full gossip queue.
	gossipDropped           atomic.Uint64
	repairs, repairFailures atomic.Uint64
	// rejoins counts failed members that became reachable again;
	// rejoinAttempts the rejoin loop's rounds.
	rejoins, rejoinAttempts atomic.Uint64
}

// peer is what this node knows of another member.
type peer struct {
	name   string
	addr   string // memberlist host:port
	meta   meta
	state  memberlist.NodeStateType
	has    map[uint64]uint64 // origin -> Seq it holds (announcements, digests)
	sender *sender           // unicast mode
	node   *memberlist.Node
}

// meta is what a node tells the others about itself, in memberlist's node
// metadata (at most 512 bytes).
type meta struct {
	HTTP   string `json:"h"`
	Origin string `json:"o"`
	Ready  bool   `json:"r"`
	// Leaving is set once the node shuts down, so the others tell a
	// graceful leave from a death (memberlist reports both alike).
	Leaving bool `json:"l,omitempty"`
}

// New validates cfg and returns a node; nothing runs until Start.
func New(cfg Config, log *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, err := url.Parse(cfg.HTTP)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("cluster: HTTP %q is not a base URL like http://host:port", cfg.HTTP)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Node{
		cfg:    cfg,
		log:    log.With("node", cfg.NodeName),
		client: &http.Client{Timeout: 30 * time.Second},
		host:   u.Host,
		okick:  make(chan struct{}, 1),
		peers:  make(map[string]*peer),
		failed: make(map[string]failedMember),
		stop:   make(chan struct{}),
	}, nil
}

// Commit hands the node one of this node's own committed events to
// replicate. It is the broker's Config.OnCommit: it runs under the
// broker's commit lock, so it only appends to a list.
func (n *Node) Commit(ev broker.Event) {
	n.omu.Lock()
	n.outbox = append(n.outbox, ev)
	n.omu.Unlock()
	select {
	case n.okick <- struct{}{}:
	default:
	}
}

// Ready reports whether the node has its state and serves.
func (n *Node) Ready() bool { return n.ready.Load() && !n.closing.Load() }

// Start joins the cluster (if Config.Join names peers), restores a ready
// peer's snapshot, and then reports ready. It returns once ready, or with
// ctx's error. The HTTP server serving Handler must already run: peers
// start streaming to this node as soon as it joins.
func (n *Node) Start(ctx context.Context, b *broker.Broker) error {
	n.b = b
	mc, err := n.memberlistConfig()
	if err != nil {
		return err
	}
	n.bq = &memberlist.TransmitLimitedQueue{NumNodes: n.numNodes, RetransmitMult: 3}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("cluster: starting memberlist: %w", err)
	}
	n.pmu.Lock()
	n.ml = ml
	n.pmu.Unlock()
	n.wg.Go(n.replicate)
	n.wg.Go(n.announceLoop)
	n.wg.Go(n.repairLoop)
	n.wg.Go(n.rejoinLoop)

	if len(n.cfg.Join) > 0 {
		if err := n.bootstrap(ctx); err != nil {
			return err
		}
	}
	n.startApplying()
	n.ready.Store(true)
	n.updateMeta()
	n.log.Info("cluster node ready", "mode", n.cfg.Mode, "members", ml.NumMembers())
	return nil
}

// bootstrap joins the seeds and restores a snapshot from a ready member.
// Without any reachable ready member within JoinTimeout, the node starts
// alone: the first node of a cluster, or a whole cluster restarting.
func (n *Node) bootstrap(ctx context.Context) error {
	deadline := time.Now().Add(n.cfg.JoinTimeout)
	backoff := 100 * time.Millisecond
	joined := false
	for time.Now().Before(deadline) {
		if !joined {
			// Joining only itself (the seeds name every replica, this
			// one included, or DNS lists only this one so far) is not
			// joining: keep trying, the seeds are resolved again each
			// time, until another member answers.
			k, err := n.ml.Join(n.cfg.Join)
			if err == nil && k > 0 && n.ml.NumMembers() > 1 {
				joined = true
				n.log.Info("joined cluster", "contacted", k, "members", n.ml.NumMembers())
			} else {
				n.log.Debug("no other member reached yet; retrying", "contacted", k, "err", err)
			}
		}
		if joined && n.b.Recovered() {
			// Replayed from its data directory: keep that history and
			// repair what it missed while down, instead of replacing it
			// with a snapshot (a whole cluster restarting at once has
			// no ready peer to copy from anyway).
			n.startApplying()
			n.catchUp(ctx)
			return nil
		}
		if joined {
			if err := n.fetchSnapshot(ctx); err == nil {
				return nil
			} else if !errors.Is(err, errNoReadyPeer) {
				n.log.Warn("snapshot failed; retrying", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
	// What every node of a cluster starting cold does, so not a warning.
	n.log.Info("no ready peer yet; starting alone with an empty state, as every node of a cluster starting cold does", "join", n.cfg.Join, "after", n.cfg.JoinTimeout)
	return nil
}

var errNoReadyPeer = errors.New("cluster: no ready peer yet")

// fetchSnapshot restores the state of one ready peer.
func (n *Node) fetchSnapshot(ctx context.Context) error {
	// A copy: memberlist's callbacks update the peer meanwhile.
	var from *source
	n.pmu.Lock()
	for _, p := range n.peers {
		if p.meta.Ready && p.meta.HTTP != "" && p.state == memberlist.StateAlive {
			from = &source{p.name, p.meta.HTTP}
			break
		}
	}
	n.pmu.Unlock()
	if from == nil {
		return errNoReadyPeer
	}
	body, err := n.get(ctx, from.http+"/internal/v1/snapshot")
	if err != nil {
		return err
	}
	snap, err := decodeSnapshot(body)
	if err != nil {
		return err
	}
	if err := n.b.Restore(snap); err != nil {
		return err
	}
	msgs := 0
	for _, c := range snap.Channels {
		msgs += len(c.Messages)
	}
	n.log.Info("restored snapshot", "from", from.name, "url", from.http, "channels", len(snap.Channels), "messages", msgs, "bytes", len(body))
	n.startApplying() // what arrived meanwhile, and from now on directly
	n.catchUp(ctx)
	return nil
}

// catchUp pulls, from every ready peer, what it holds beyond the restored
// snapshot (the giver may have lagged behind another peer). Events
// committed after this node joined reach it through the peers' streams or
// gossip, so once this is done the node is as complete as its peers.
func (n *Node) catchUp(ctx context.Context) {
	n.pmu.Lock()
	var srcs []source
	for _, p := range n.peers {
		if p.meta.Ready && p.meta.HTTP != "" && p.state == memberlist.StateAlive {
			srcs = append(srcs, source{p.name, p.meta.HTTP})
		}
	}
	n.pmu.Unlock()
	pulled := 0
	for _, src := range srcs {
		body, err := n.get(ctx, src.http+"/internal/v1/positions")
		if err != nil {
			n.log.Debug("catch-up: no positions from peer", "peer", src.name, "err", err)
			continue
		}
		_, _, theirs, err := decodePositions(body)
		if err != nil {
			continue
		}
		n.heard(src.name, theirs)
		mine := map[uint64]uint64{}
		for _, p := range n.b.Positions() {
			mine[p.Origin] = p.Seq
		}
		for _, p := range theirs {
			if p.Seq > mine[p.Origin] && p.Origin != n.b.Origin() {
				if err := n.pull(p.Origin, mine[p.Origin]+1, src); err != nil {
					n.log.Debug("catch-up pull failed; anti-entropy will retry", "peer", src.name, "err", err)
				} else {
					pulled++
				}
			}
		}
	}
	if pulled > 0 {
		n.log.Info("caught up with peers after the snapshot", "origins", pulled)
	}
}

// startApplying applies what arrived while the snapshot was restored and
// from now on applies incoming events directly.
func (n *Node) startApplying() {
	for {
		n.bmu.Lock()
		evs := n.buffered
		n.buffered = nil
		if len(evs) == 0 {
			n.applying = true
			n.bmu.Unlock()
			return
		}
		n.bmu.Unlock()
		if _, err := n.b.Apply(evs); err != nil {
			n.log.Warn("applying buffered events", "err", err)
		}
	}
}

// receive applies events that came from a peer, and returns the indexes
// of those seen here for the first time.
func (n *Node) receive(evs []broker.Event) []int {
	n.received.Add(uint64(len(evs)))
	n.bmu.Lock()
	if !n.applying {
		room := maxBuffered - len(n.buffered)
		if room < len(evs) {
			n.bufDropped.Add(uint64(len(evs) - max(room, 0)))
			evs = evs[:max(room, 0)]
		}
		n.buffered = append(n.buffered, evs...)
		n.bmu.Unlock()
		return nil
	}
	n.bmu.Unlock()
	st, err := n.b.Apply(evs)
	if err != nil {
		return nil // shutting down
	}
	return st.Fresh
}

// numNodes is memberlist's member count, for the broadcast queue.
func (n *Node) numNodes() int {
	n.pmu.Lock()
	ml := n.ml
	n.pmu.Unlock()
	if ml == nil {
		return 1
	}
	return ml.NumMembers()
}

// localMeta is this node's metadata.
func (n *Node) localMeta() meta {
	origin := ""
	if n.b != nil {
		origin = hex.EncodeToString(u64bytes(n.b.Origin()))
	}
	return meta{HTTP: n.cfg.HTTP, Origin: origin, Ready: n.Ready(), Leaving: n.closing.Load()}
}

// updateMeta tells the others this node's metadata changed (ready).
func (n *Node) updateMeta() {
	if n.ml != nil {
		if err := n.ml.UpdateNode(n.cfg.LeaveTimeout); err != nil {
			n.log.Debug("updating node metadata", "err", err)
		}
	}
}

func u64bytes(v uint64) []byte {
	b := make([]byte, 8)
	for i := range 8 {
		b[7-i] = byte(v >> (8 * i))
	}
	return b
}

func parseOrigin(s string) uint64 {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 8 {
		return 0
	}
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}

// memberlistConfig builds memberlist's configuration from ours.
func (n *Node) memberlistConfig() (*memberlist.Config, error) {
	mc := memberlist.DefaultLANConfig()
	mc.Name = n.cfg.NodeName
	host, port, err := splitHostPort(n.cfg.Bind)
	if err != nil {
		return nil, err
	}
	mc.BindAddr, mc.BindPort = host, port
	if mc.BindAddr == "" {
		mc.BindAddr = "0.0.0.0"
	}
	if n.cfg.Advertise != "" {
		ah, ap, err := splitHostPort(n.cfg.Advertise)
		if err != nil {
			return nil, err
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ah, ap
	} else if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
	}
	mc.SecretKey = n.cfg.gossipKey()
	mc.GossipInterval = n.cfg.GossipInterval
	mc.PushPullInterval = n.cfg.PushPullInterval
	mc.ProbeInterval = n.cfg.ProbeInterval
	mc.ProbeTimeout = n.cfg.ProbeTimeout
	if n.transport != nil {
		mc.Transport = n.transport
	}
	mc.Delegate = &delegate{n: n}
	mc.Events = &events{n: n}
	mc.Logger = slog.NewLogLogger(n.log.Handler(), slog.LevelDebug)
	if n.tune != nil {
		n.tune(mc)
	}
	return mc, nil
}

// Close leaves the cluster gracefully: it stops reporting ready, gives the
// peers what is still queued for them (until ctx ends), tells them it is
// leaving, and stops every goroutine it owns.
func (n *Node) Close(ctx context.Context) error {
	if !n.closing.CompareAndSwap(false, true) {
		return nil
	}
	if n.ml == nil {
		return nil
	}
	n.updateMeta()
	n.drain(ctx)
	if n.cfg.Mode == ModeGossip {
		n.handOver()
	}
	if err := n.ml.Leave(n.cfg.LeaveTimeout); err != nil {
		// Typically the others are leaving too (a whole cluster
		// stopping), so nobody is left to tell. Not a failed shutdown:
		// peers that are still up find out by probing.
		n.log.Warn("leave not confirmed; the others will notice this node is gone by probing it", "err", err)
	}
	err := n.ml.Shutdown()
	close(n.stop)
	n.pmu.Lock()
	for _, p := range n.peers {
		if p.sender != nil {
			p.sender.close()
		}
	}
	n.pmu.Unlock()
	n.wg.Wait() // the senders' goroutines too
	return err
}

// handOver sends every live peer, reliably, this node's events from the
// last one it is known to hold. Gossip makes no promise about a broadcast
// still in flight when its sender stops, and once this node has left no
// peer can pull from it: so a leaving gossip node delivers its own tail
// before it goes. A peer ignores what it already has.
func (n *Node) handOver() {
	if n.b == nil {
		return
	}
	own := n.b.Origin()
	var last uint64
	for _, p := range n.b.Positions() {
		if p.Local {
			last = p.Seq
		}
	}
	n.pmu.Lock()
	type target struct {
		node *memberlist.Node
		from uint64
	}
	var targets []target
	for _, p := range n.peers {
		if p.state == memberlist.StateAlive && p.node != nil && p.has[own] < last {
			targets = append(targets, target{p.node, p.has[own] + 1})
		}
	}
	n.pmu.Unlock()
	sent := 0
	for _, t := range targets {
		for from := t.from; from <= last; {
			evs, err := n.b.Events(own, from, handOverBatch)
			if err != nil || len(evs) == 0 {
				break // evicted: the peer repairs, or reports a loss
			}
			if err := n.ml.SendReliable(t.node, encodeEvents(evs)); err != nil {
				n.log.Warn("handing over events failed; the peer will repair from another node", "peer", t.node.Name, "err", err)
				break
			}
			sent += len(evs)
			from = evs[len(evs)-1].Seq + 1
		}
	}
	if sent > 0 {
		n.log.Info("handed own events over to peers before leaving", "events", sent, "peers", len(targets))
	}
}

// handOverBatch caps the events in one reliable message when leaving.
const handOverBatch = 500

// drain waits until this node's events have left its queues.
func (n *Node) drain(ctx context.Context) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		n.omu.Lock()
		left := len(n.outbox)
		n.omu.Unlock()
		n.pmu.Lock()
		for _, p := range n.peers {
			if p.sender != nil && p.state == memberlist.StateAlive {
				left += p.sender.queued()
			}
		}
		n.pmu.Unlock()
		// What memberlist has yet to gossip (announcements included).
		// Counting Finished calls instead would hang: memberlist's queue
		// can replace a broadcast by another with the same transmit
		// count, length and recycled id without finishing it
		// (hashicorp/memberlist#263).
		if n.ml.NumMembers() > 1 {
			left += n.bq.NumQueued()
		}
		if left == 0 {
			return
		}
		select {
		case <-ctx.Done():
			n.log.Warn("leaving with events not yet replicated", "queued", left)
			return
		case <-tick.C:
		}
	}
}

// get fetches an internal URL from a peer.
func (n *Node) get(ctx context.Context, u string) ([]byte, error) {
	body, _, err := n.getStatus(ctx, u)
	return body, err
}

// statusError is a peer's non-200 answer.
type statusError struct {
	code   int
	header http.Header
}

func (e *statusError) Error() string { return fmt.Sprintf("cluster: peer answered %d", e.code) }

func (n *Node) getStatus(ctx context.Context, u string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	if n.cfg.Key != "" {
		req.Header.Set("Authorization", "Bearer "+n.cfg.Key)
	}
	req.Header.Set("X-Pushup-Node", n.cfg.NodeName)
	resp, err := n.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := readAllLimit(resp.Body, maxBody)
	if err != nil {
		return nil, resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, resp.StatusCode, &statusError{code: resp.StatusCode, header: resp.Header}
	}
	return body, resp.StatusCode, nil
}

// metaOf decodes a member's metadata.
func metaOf(b []byte) meta {
	var m meta
	_ = json.Unmarshal(b, &m) // a member without ours is simply not ready
	return m
}
