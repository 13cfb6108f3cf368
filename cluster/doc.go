// Package cluster makes identical PushUp nodes one service: a publication
// or channel change received by any node reaches every node, so a load
// balancer may send any request anywhere.
//
// Membership and failure detection come from hashicorp/memberlist. Each
// node's own events (broker.Event: publications and channel renewals and
// closes, numbered per origin) are replicated in one of two modes:
//
//   - unicast: the node streams them to each live peer over one persistent
//     connection per peer (FIFO, batched, reconnecting with backoff, from a
//     bounded queue whose overflows are counted and later repaired);
//   - gossip: they spread epidemically through memberlist's broadcasts,
//     re-broadcast by every node on first receipt; events too large for a
//     gossip packet are sent to every node reliably instead.
//
// In both modes anti-entropy repairs what was lost: every node announces
// its own origin's position every second and exchanges all positions in
// memberlist's periodic push/pull; a node that stays behind on an origin
// pulls the missing events from a peer's log (broker.Events) and, if no
// peer keeps them any more, skips them so its readers are told they were
// truncated (broker.Skip). The broker applies other origins' events in
// sequence order and exposes only each origin's contiguous prefix, which
// with per-origin cursors makes a subscriber's every poll, on any node,
// gap-free and free of repeats.
//
// A node that starts with peers to join pulls a snapshot of a ready
// peer's channels and caches before it reports ready (Ready), so a load
// balancer's readiness check keeps requests away until it can serve them.
//
// Node-to-node traffic other than memberlist's goes over the nodes' HTTP
// ports, under /internal/v1/ (Handler), authenticated by the cluster key.
//
// A Node is safe for concurrent use. Goroutines it owns: memberlist's, one
// replicator, one sender per peer in unicast mode, one receiver per
// incoming stream, the repair loop and the rejoin loop (rejoin.go: a
// member declared dead is Joined again until it answers, so the two sides
// of a healed partition merge); Close stops them all.
package cluster
