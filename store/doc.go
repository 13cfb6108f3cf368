// Package store keeps a node's committed events on disk, in an embedded
// bbolt database, so a restarted node (or a whole cluster restarted at
// once) comes back with its history. It implements broker.Journal.
//
// The broker hands every committed event to Record, under its commit lock
// and in commit order; Record only queues it. One writer goroutine
// (started by Start, stopped by Close) writes the queue in group commits,
// one bbolt transaction per group, and fsyncs according to the Fsync
// mode:
//
//   - FsyncAlways: a group is committed and fsynced as soon as the writer
//     is free; Wait (called by Publish before it acknowledges) returns
//     only once the event is on disk. Nothing acknowledged is lost, even
//     by a power cut.
//   - FsyncBatch: groups collect for Config.BatchDelay, then are committed
//     with one fsync; Publish does not wait. A crash (kill -9 or power
//     cut) may lose what was acknowledged in the last BatchDelay plus one
//     commit's time.
//   - FsyncNever: groups are committed at once but never fsynced: a
//     killed process loses only what was still queued (as in batch mode
//     without the delay), while a power cut or kernel crash may lose
//     anything the kernel had not written back yet.
//
// On start, Load returns what the disk holds (channel states, then events
// in commit order) for broker.Recover. Every Config.PruneInterval the
// writer asks the broker what it still holds in memory (Retained) and
// deletes each origin's older events: expired and evicted messages leave
// the disk within one interval once no older event of the same origin is
// still held.
//
// Lock order: the broker's commit lock -> Store.mu. The writer never
// holds Store.mu while it writes to disk or calls the broker.
//
// A Store is safe for concurrent use.
package store
