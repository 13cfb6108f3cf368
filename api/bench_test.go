package api

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

func startBenchServer(b *testing.B, model Model) *testServer {
	return startServer(b, options{model: model})
}

// BenchmarkSubscribePoll is one poll that is answered at once (a cached
// message) on a kept-alive connection: in the event model the engine's
// fast path, the hottest path there is. Allocations are the whole
// process's, client included (the same client in every model), so the
// models compare side by side.
func BenchmarkSubscribePoll(b *testing.B) {
	for _, model := range models {
		b.Run(string(model), func(b *testing.B) {
			ts := startBenchServer(b, model)
			ts.publish(`{"channels":["a"],"data":"x"}`)
			conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			req := []byte("GET /v1/subscribe?channels=a&since=0&timeout=0 HTTP/1.1\r\nHost: bench\r\n\r\n")
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := conn.Write(req); err != nil {
					b.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}

// BenchmarkParkedSubscriberHeap parks 2,000 subscribers and reports the Go
// heap each one holds (B/parked): the engine's Conn record, the broker's
// subscription and the epoll registration's share of the registry. RSS
// per subscriber, which adds the kernel-side socket, is what
// pushup-loadtest fanout measures.
func BenchmarkParkedSubscriberHeap(b *testing.B) {
	const n = 2000
	for _, model := range []Model{ModelEvent, ModelGoroutine} {
		b.Run(string(model), func(b *testing.B) {
			for b.Loop() {
				ts := startBenchServer(b, model)
				ts.do(http.MethodGet, "/healthz", "")
				before := heapInUse()
				conns := parkRaw(b, ts, n, q("channels", "a", "since", "now", "timeout", "60"))
				deadline := time.Now().Add(30 * time.Second)
				for ts.b.Stats().Waiters < n && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				if ts.b.Stats().Waiters < n {
					b.Fatalf("only %d of %d parked", ts.b.Stats().Waiters, n)
				}
				after := heapInUse()
				b.ReportMetric(float64(after-before)/n, "B/parked")
				for _, c := range conns {
					c.Close()
				}
			}
		})
	}
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}
