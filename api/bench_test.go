package api

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pushuphq/pushup/broker"
)

func startBenchServer(b *testing.B, model Model) *testServer {
	return startServer(b, options{model: model})
}

// cachedPollConn starts a server of model with one message cached on
// channel a and returns a kept-alive connection to it (closed with the
// benchmark) and the request that reads that message at once.
func cachedPollConn(b *testing.B, model Model) (net.Conn, []byte) {
	ts := startBenchServer(b, model)
	ts.publish(`{"channels":["a"],"data":"x"}`)
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return conn, []byte("GET /v1/subscribe?channels=a&since=0&timeout=0 HTTP/1.1\r\nHost: bench\r\n\r\n")
}

// BenchmarkSubscribePoll is one poll that is answered at once (a cached
// message) on a kept-alive connection: in the event model the engine's
// fast path, the hottest path there is. Allocations are the whole
// process's, client included (the same client in every model), so the
// models compare side by side.
func BenchmarkSubscribePoll(b *testing.B) {
	for _, model := range models {
		b.Run(string(model), func(b *testing.B) {
			conn, req := cachedPollConn(b, model)
			br := bufio.NewReader(conn)
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

// BenchmarkSubscribePollRaw is BenchmarkSubscribePoll with a client that
// allocates nothing (it reads each answer into one buffer and finds its
// end by Content-Length), so allocs/op are the server's own per request:
// in the event model, the engine's and the handler's.
func BenchmarkSubscribePollRaw(b *testing.B) {
	for _, model := range models {
		b.Run(string(model), func(b *testing.B) {
			conn, req := cachedPollConn(b, model)
			buf := make([]byte, 4096)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := conn.Write(req); err != nil {
					b.Fatal(err)
				}
				if err := readRawAnswer(conn, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFanoutRepoll is the fan-out's hot path in the event model,
// whole process: 200 kept-alive subscribers wait on one channel, a
// publication answers them all, and each polls again with the cursor it
// got (the same for all), to wait for the next. allocs/delivery is what
// the profile of issue 12 charges GC work to; the client allocates
// nothing.
func BenchmarkFanoutRepoll(b *testing.B) {
	const n = 200
	ts := startBenchServer(b, ModelEvent)
	ts.publish(`{"channels":["a"],"data":"x"}`)
	first, _ := ts.subscribe("channels=a&timeout=0")
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	const prefix = "GET /v1/subscribe?channels=a&timeout=60&since="
	req := make([]byte, 0, 512)
	setCursor := func(cursor []byte) {
		req = append(append(append(req[:0], prefix...), cursor...), " HTTP/1.1\r\nHost: bench\r\n\r\n"...)
	}
	setCursor([]byte(first.Cursor))
	repoll := func() {
		for _, c := range conns {
			if _, err := c.Write(req); err != nil {
				b.Fatal(err)
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			info, err := ts.b.Info("a")
			if err == nil && info.Waiters == n {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d wait", info.Waiters, n)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	repoll()
	buf := make([]byte, 4096)
	cursor := make([]byte, 0, 256)
	pub := []broker.Publication{{Channels: []string{"a"}, Data: []byte(`"x"`)}}
	rounds := 0
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		if _, err := ts.b.Publish(pub...); err != nil {
			b.Fatal(err)
		}
		for i, c := range conns {
			if err := readRawAnswer(c, buf); err != nil {
				b.Fatal(err)
			}
			if i == 0 { // every subscriber gets the same cursor
				at := bytes.Index(buf, []byte(`"cursor":"`)) + len(`"cursor":"`)
				cursor = append(cursor[:0], buf[at:at+bytes.IndexByte(buf[at:], '"')]...)
			}
		}
		setCursor(cursor)
		repoll()
		rounds++
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(rounds*n), "allocs/delivery")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(rounds*n), "B/delivery")
}

// readRawAnswer reads one 200 response of at most len(buf) bytes.
func readRawAnswer(conn net.Conn, buf []byte) error {
	n := 0
	for {
		m, err := conn.Read(buf[n:])
		if err != nil {
			return err
		}
		n += m
		head := bytes.Index(buf[:n], []byte("\r\n\r\n"))
		if head < 0 {
			continue
		}
		if !bytes.HasPrefix(buf, []byte("HTTP/1.1 200 ")) {
			return fmt.Errorf("not a 200: %.40q", buf[:n])
		}
		i := bytes.Index(buf[:head], []byte("Content-Length: "))
		if i < 0 {
			return fmt.Errorf("no Content-Length: %.200q", buf[:head])
		}
		length := 0
		for _, c := range buf[i+len("Content-Length: ") : head+2] {
			if c < '0' || c > '9' {
				break
			}
			length = length*10 + int(c-'0')
		}
		if n >= head+4+length {
			return nil
		}
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

// BenchmarkIdleStreamHeap opens 2,000 GET /v1/events streams, waits until
// each one waits on the broker, and reports the Go heap each idle stream
// holds (B/stream): in the event model the engine's Conn record, the
// stream's state and the broker's subscription; in the goroutine model
// also the handler's goroutine stack (in the stack figures, not the heap)
// and http.Server's buffers. RSS per stream, which adds the kernel-side
// socket, is what pushup-loadtest compare -transport sse measures.
func BenchmarkIdleStreamHeap(b *testing.B) {
	const n = 2000
	for _, model := range []Model{ModelEvent, ModelGoroutine} {
		b.Run(string(model), func(b *testing.B) {
			for b.Loop() {
				ts := startBenchServer(b, model)
				ts.do(http.MethodGet, "/healthz", "")
				before, stackBefore := memInUse()
				conns := openRawStreams(b, ts, n, q("channels", "a", "since", "now"))
				deadline := time.Now().Add(30 * time.Second)
				for ts.b.Stats().Waiters < n && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				if ts.b.Stats().Waiters < n {
					b.Fatalf("only %d of %d streams wait", ts.b.Stats().Waiters, n)
				}
				after, stackAfter := memInUse()
				b.ReportMetric(float64(after-before)/n, "B/stream")
				b.ReportMetric(float64(after-before+stackAfter-stackBefore)/n, "B+stack/stream")
				for _, c := range conns {
					c.Close()
				}
			}
		})
	}
}

// memInUse returns the Go heap and goroutine stacks in use, after a GC.
func memInUse() (heap, stack int64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse), int64(ms.StackInuse)
}
