package cluster

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// Status is the node's view of the cluster, as GET /v1/cluster shows it.
type Status struct {
	Node    string         `json:"node"`
	Mode    Mode           `json:"replication"`
	Ready   bool           `json:"ready"`
	Origin  string         `json:"origin"`
	HTTP    string         `json:"http"`
	Members []MemberStatus `json:"members"`
	// Partitioned is set while this node reaches no majority of the
	// members it knows (itself included): it is cut off, or most of the
	// cluster failed. It still serves its clients; see Partitioned.
	Partitioned bool `json:"partitioned"`
	// Unreachable names the failed members this node keeps trying to
	// reach again (not those that left).
	Unreachable []string `json:"unreachable,omitempty"`
	// Rejoins counts failed members that became reachable again;
	// RejoinAttempts the rounds of Joins tried to reach them.
	Rejoins        uint64 `json:"rejoins"`
	RejoinAttempts uint64 `json:"rejoin_attempts"`
	// Totals since start.
	Received       uint64 `json:"events_received"`
	Repaired       uint64 `json:"events_repaired"`
	Skipped        uint64 `json:"events_skipped"`
	Repairs        uint64 `json:"repairs"`
	RepairFailures uint64 `json:"repair_failures"`
	// GossipDropped counts this node's broadcasts dropped from a full
	// gossip queue (gossip mode); anti-entropy repairs them.
	GossipDropped uint64 `json:"gossip_dropped"`
}

// MemberStatus is one member as this node sees it.
type MemberStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	HTTP    string `json:"http,omitempty"`
	// State is alive, or dead (failed or left; memberlist's callbacks do
	// not tell the two apart).
	State  string `json:"state"`
	Origin string `json:"origin,omitempty"`
	Ready  bool   `json:"ready"`
	Self   bool   `json:"self,omitempty"`
	// Replication of the member's events to this node, and of this
	// node's to the member; nil for this node itself.
	Replication *Replication `json:"replication,omitempty"`
}

// Replication is the replication lag between this node and a member.
type Replication struct {
	// AppliedSeq is the last of the member's events applied here.
	AppliedSeq uint64 `json:"applied_seq"`
	// KnownSeq is the last of its events known to exist.
	KnownSeq uint64 `json:"known_seq"`
	// Behind is KnownSeq - AppliedSeq: its events this node still lacks.
	Behind uint64 `json:"behind"`
	// Pending are its events held here after a gap.
	Pending int `json:"pending"`
	// LastAppliedMs is how long ago its last event was applied here.
	LastAppliedMs int64 `json:"last_applied_ms"`
	// LagMs is how far behind, in the events' own time, the last applied
	// event is from the newest this node has committed of its own: 0 when
	// caught up.
	LagMs int64 `json:"lag_ms"`
	// Stream is this node's unicast stream to the member.
	Stream *StreamStatus `json:"stream,omitempty"`
}

// StreamStatus is a unicast stream to a member.
type StreamStatus struct {
	Connected  bool   `json:"connected"`
	Queued     int    `json:"queued"`
	Sent       uint64 `json:"sent"`
	Dropped    uint64 `json:"dropped"`
	Reconnects uint64 `json:"reconnects"`
	LastError  string `json:"last_error,omitempty"`
}

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return "unknown"
}

// Status reports the cluster as this node sees it.
func (n *Node) Status() Status {
	st := Status{
		Node: n.cfg.NodeName, Mode: n.cfg.Mode, Ready: n.Ready(), HTTP: n.cfg.HTTP,
		Received: n.received.Load(), Repaired: n.repaired.Load(), Skipped: n.skipped.Load(),
		Repairs: n.repairs.Load(), RepairFailures: n.repairFailures.Load(), GossipDropped: n.gossipDropped.Load(),
		Rejoins: n.rejoins.Load(), RejoinAttempts: n.rejoinAttempts.Load(),
	}
	if n.b == nil {
		return st
	}
	st.Origin = fmt.Sprintf("%016x", n.b.Origin())
	self := n.cfg.Advertise
	if n.ml != nil {
		ln := n.ml.LocalNode()
		self = net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
	}
	st.Members = append(st.Members, MemberStatus{Name: n.cfg.NodeName, Address: self, HTTP: n.cfg.HTTP,
		State: "alive", Origin: st.Origin, Ready: st.Ready, Self: true})
	byOrigin := map[uint64]int{}
	positions := n.b.Positions()
	var newest int64
	for i, p := range positions {
		byOrigin[p.Origin] = i
		if p.Local {
			newest = p.TS.Millis()
		}
	}
	now := time.Now()
	n.pmu.Lock()
	st.Partitioned = minority(n.countLocked())
	for name := range n.failed {
		st.Unreachable = append(st.Unreachable, name)
	}
	sort.Strings(st.Unreachable)
	for _, p := range n.peers {
		ms := MemberStatus{Name: p.name, Address: p.addr, HTTP: p.meta.HTTP, State: stateName(p.state),
			Origin: p.meta.Origin, Ready: p.meta.Ready}
		r := &Replication{}
		if i, ok := byOrigin[parseOrigin(p.meta.Origin)]; ok {
			pos := positions[i]
			r.AppliedSeq, r.KnownSeq, r.Pending = pos.Seq, pos.Known, pos.Pending
			r.Behind = pos.Known - pos.Seq
			if !pos.Applied.IsZero() {
				r.LastAppliedMs = now.Sub(pos.Applied).Milliseconds()
			}
			if r.Behind > 0 {
				r.LagMs = max(0, newest-pos.TS.Millis())
			}
		}
		if p.sender != nil {
			s := &StreamStatus{Connected: p.sender.connected.Load(), Queued: p.sender.queued(),
				Sent: p.sender.sent.Load(), Dropped: p.sender.dropped.Load(), Reconnects: p.sender.reconnects.Load()}
			if e := p.sender.lastErr.Load(); e != nil && !s.Connected {
				s.LastError = *e
			}
			r.Stream = s
		}
		ms.Replication = r
		st.Members = append(st.Members, ms)
	}
	n.pmu.Unlock()
	sort.Slice(st.Members[1:], func(i, j int) bool { return st.Members[1+i].Name < st.Members[1+j].Name })
	return st
}

// Partitioned reports whether this node reaches no majority of the members
// it knows (Status.Partitioned), for the readiness check to show.
func (n *Node) Partitioned() bool {
	n.pmu.Lock()
	defer n.pmu.Unlock()
	return minority(n.countLocked())
}

// Collector exports the cluster's figures to Prometheus.
func (n *Node) Collector() prometheus.Collector { return &collector{n: n} }

type collector struct{ n *Node }

var (
	descMembers = prometheus.NewDesc("pushup_cluster_members", "Members by state, as this node sees them (itself included).", []string{"state"}, nil)
	descReady   = prometheus.NewDesc("pushup_cluster_ready", "1 when this node has its state and serves.", nil, nil)
	descBehind  = prometheus.NewDesc("pushup_cluster_behind_events", "A member's events known to exist but not applied here yet.", []string{"member"}, nil)
	descQueued  = prometheus.NewDesc("pushup_cluster_stream_queued_events", "This node's events waiting to be streamed to a member (unicast).", []string{"member"}, nil)
	descDropped = prometheus.NewDesc("pushup_cluster_stream_dropped_events_total", "Events dropped because a member's stream queue overflowed; the member repairs them.", []string{"member"}, nil)
	descRecv    = prometheus.NewDesc("pushup_cluster_events_received_total", "Events received from peers (streams, gossip, repairs).", nil, nil)
	descRepair  = prometheus.NewDesc("pushup_cluster_events_repaired_total", "Events pulled from peers by anti-entropy.", nil, nil)
	descSkipped = prometheus.NewDesc("pushup_cluster_events_skipped_total", "Events no peer kept any more; readers behind them were told they were truncated.", nil, nil)
	descGossipD = prometheus.NewDesc("pushup_cluster_gossip_dropped_total", "Broadcasts dropped from a full gossip queue; anti-entropy repairs them.", nil, nil)
	descRejoins = prometheus.NewDesc("pushup_cluster_rejoins_total", "Failed members that became reachable again (a healed partition, a restarted node).", nil, nil)
	descRejoinA = prometheus.NewDesc("pushup_cluster_rejoin_attempts_total", "Rounds of Joins tried to reach failed members again.", nil, nil)
	descUnreach = prometheus.NewDesc("pushup_cluster_unreachable_members", "Failed members this node keeps trying to reach again.", nil, nil)
	descPart    = prometheus.NewDesc("pushup_cluster_partitioned", "1 while this node reaches no majority of the members it knows.", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMembers, descReady, descBehind, descQueued, descDropped, descRecv, descRepair, descSkipped, descGossipD,
		descRejoins, descRejoinA, descUnreach, descPart} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.Status()
	states := map[string]float64{"alive": 0, "suspect": 0, "dead": 0, "left": 0}
	for _, m := range st.Members {
		states[m.State]++
		if r := m.Replication; r != nil {
			ch <- prometheus.MustNewConstMetric(descBehind, prometheus.GaugeValue, float64(r.Behind), m.Name)
			if s := r.Stream; s != nil {
				ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(s.Queued), m.Name)
				ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(s.Dropped), m.Name)
			}
		}
	}
	for s, v := range states {
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, v, s)
	}
	ready := 0.0
	if st.Ready {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)
	ch <- prometheus.MustNewConstMetric(descRecv, prometheus.CounterValue, float64(st.Received))
	ch <- prometheus.MustNewConstMetric(descRepair, prometheus.CounterValue, float64(st.Repaired))
	ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.CounterValue, float64(st.Skipped))
	ch <- prometheus.MustNewConstMetric(descGossipD, prometheus.CounterValue, float64(st.GossipDropped))
	ch <- prometheus.MustNewConstMetric(descRejoins, prometheus.CounterValue, float64(st.Rejoins))
	ch <- prometheus.MustNewConstMetric(descRejoinA, prometheus.CounterValue, float64(st.RejoinAttempts))
	ch <- prometheus.MustNewConstMetric(descUnreach, prometheus.GaugeValue, float64(len(st.Unreachable)))
	part := 0.0
	if st.Partitioned {
		part = 1
	}
	ch <- prometheus.MustNewConstMetric(descPart, prometheus.GaugeValue, part)
}
