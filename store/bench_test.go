package store

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/pushuphq/pushup/broker"
)

// BenchmarkPublish measures publishing through the broker with each fsync
// mode against no data directory: 16 publishers, one 100-byte message
// each per call, over 100 channels. It reports throughput (ns/op is per
// publication across all publishers) and each call's latency percentiles.
//
//	go test -run '^$' -bench BenchmarkPublish -benchtime 3s ./store
func BenchmarkPublish(b *testing.B) {
	payload, _ := json.Marshal(string(make([]byte, 90)))
	for _, mode := range []Fsync{"", FsyncNever, FsyncBatch, FsyncAlways} {
		name := string(mode)
		if name == "" {
			name = "memory"
		}
		b.Run(name, func(b *testing.B) {
			bc := broker.DefaultConfig()
			var st *Store
			if mode != "" {
				sc := DefaultConfig()
				sc.Dir, sc.Fsync = b.TempDir(), mode
				var err error
				if st, err = Open(sc); err != nil {
					b.Fatal(err)
				}
				bc.Journal = st
			}
			br, err := broker.New(bc)
			if err != nil {
				b.Fatal(err)
			}
			if st != nil {
				st.Start(br.Retained)
			}
			var mu sync.Mutex
			var lat []time.Duration
			var id int
			b.SetParallelism(8) // 16 publishers on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				mu.Lock()
				ch := []string{fmt.Sprintf("c%d", id%100)}
				id++
				mu.Unlock()
				var mine []time.Duration
				for pb.Next() {
					start := time.Now()
					if _, err := br.Publish(broker.Publication{Channels: ch, Data: payload}); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			br.Close()
			if st != nil {
				s, _ := st.Stats()
				if s.Commits > 0 {
					b.ReportMetric(float64(s.Written)/float64(s.Commits), "events/commit")
					b.ReportMetric(float64(s.CommitTime.Microseconds())/float64(s.Commits), "µs/commit")
				}
				if err := st.Close(); err != nil {
					b.Fatal(err)
				}
			}
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}

// BenchmarkGroupCommit compares the two ways considered to write a group
// of 64 events of ~150 bytes with one fsync: a bbolt transaction (what
// the store does) and an append to a plain log file plus fdatasync (what
// a hand-written log would do, before any compaction or index).
//
//	go test -run '^$' -bench BenchmarkGroupCommit ./store
func BenchmarkGroupCommit(b *testing.B) {
	rec := make([]byte, 150)
	const group = 64
	b.Run("bbolt", func(b *testing.B) {
		db, err := bolt.Open(filepath.Join(b.TempDir(), "b.db"), 0o600, &bolt.Options{NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucketEvents); return err }); err != nil {
			b.Fatal(err)
		}
		var seq uint64
		for b.Loop() {
			err := db.Update(func(tx *bolt.Tx) error {
				bk := tx.Bucket(bucketEvents)
				for range group {
					seq++
					if err := bk.Put(eventKey(1, seq), rec); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("appendlog", func(b *testing.B) {
		f, err := os.OpenFile(filepath.Join(b.TempDir(), "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 0, group*(len(rec)+16))
		for b.Loop() {
			buf = buf[:0]
			for range group {
				buf = append(buf, make([]byte, 16)...)
				buf = append(buf, rec...)
			}
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReplay measures a restart: loading 100,000 publications (100
// channels, 100-byte payloads) from disk and replaying them into a fresh
// broker, what pushupd does before it serves.
//
//	go test -run '^$' -bench BenchmarkReplay -benchtime 3x ./store
func BenchmarkReplay(b *testing.B) {
	const events = 100_000
	dir := b.TempDir()
	payload, _ := json.Marshal(string(make([]byte, 90)))
	sc := DefaultConfig()
	sc.Dir = dir
	st, err := Open(sc)
	if err != nil {
		b.Fatal(err)
	}
	bc := broker.DefaultConfig()
	bc.Journal = st
	br, err := broker.New(bc)
	if err != nil {
		b.Fatal(err)
	}
	st.Start(nil)
	for i := range events {
		if _, err := br.Publish(broker.Publication{Channels: []string{fmt.Sprintf("c%d", i%100)}, Data: payload}); err != nil {
			b.Fatal(err)
		}
	}
	br.Close()
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		st, err := Open(sc)
		if err != nil {
			b.Fatal(err)
		}
		evs, err := st.Load()
		if err != nil {
			b.Fatal(err)
		}
		br, err := broker.New(broker.DefaultConfig())
		if err != nil {
			b.Fatal(err)
		}
		rs, err := br.Recover(evs)
		if err != nil || rs.Events != events {
			b.Fatalf("replayed %d of %d: %v", rs.Events, events, err)
		}
		br.Close()
		st.Close()
	}
	b.ReportMetric(float64(events), "events")
}
