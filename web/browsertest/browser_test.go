package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/api"
	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/web/demo"
)

// Environment variables the tests read.
const (
	// requireBrowserEnv=1 turns a missing Chromium from a skip into a
	// failure, so CI cannot pass without running these tests.
	requireBrowserEnv = "PUSHUP_REQUIRE_BROWSER"
	// chromiumEnv names the browser binary, overriding the search of PATH.
	chromiumEnv = "PUSHUP_CHROMIUM"
	// artifactsEnv is a directory to keep screenshots in.
	artifactsEnv = "PUSHUP_TEST_ARTIFACTS"
)

// chromiumNames are looked up on PATH in this order.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

const installHint = "the browser tests need Chromium: install it with " +
	"`sudo apt-get install -y chromium` (Debian/Ubuntu; .ci/run does this), " +
	"or set " + chromiumEnv + " to a Chromium or Chrome binary"

// testTimeout bounds each browser test, browser start included.
const testTimeout = 20 * time.Second

// pollEvery is how often in-page waits re-check their condition. A timer,
// not requestAnimationFrame: background tabs get no animation frames.
const pollEvery = 10 * time.Millisecond

// findChromium returns the browser binary to run, or "" if there is none.
func findChromium() string {
	if p := os.Getenv(chromiumEnv); p != "" {
		return p
	}
	for _, name := range chromiumNames {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// shared is the one Chromium of the test binary, started by the first test
// that needs it and stopped by TestMain. Starting Chromium costs from half
// a second to several on a busy machine, so each test gets a fresh browser
// context (its own cookies, cache and storage, as in a new profile) in it
// rather than a browser of its own.
var shared struct {
	once sync.Once
	ctx  context.Context // the browser's first tab; its life is the browser's
	err  error
	out  lockedBuffer
	stop func()
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.stop != nil {
		shared.stop()
	}
	os.Exit(code)
}

// startBrowser starts the shared headless Chromium with a fresh profile.
func startBrowser(path string) {
	dir, err := os.MkdirTemp("", "pushup-chromium-")
	if err != nil {
		shared.err = err
		return
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(dir),
		chromedp.NoSandbox,  // containers and CI runners lack the namespaces the sandbox needs
		chromedp.DisableGPU, // headless and no GPU here
		// The machine's network is closed: background fetches (component
		// updates, sync, QUIC probes) would only fail, slowly.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.WindowSize(1000, 800),
		chromedp.CombinedOutput(&shared.out),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	shared.stop = func() {
		cancelTab()
		cancelAlloc() // kills Chromium and waits for it
		os.RemoveAll(dir)
	}
	// The first action starts Chromium and ties its life to the context
	// it is given, so it gets the browser's context and a watchdog bounds
	// the start instead.
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(ctx) }()
	select {
	case shared.err = <-done:
	case <-time.After(testTimeout):
		shared.err = fmt.Errorf("no answer within %s", testTimeout)
	}
	if shared.err != nil {
		shared.err = fmt.Errorf("starting %s: %w", path, shared.err)
		return
	}
	shared.ctx = ctx
}

// newPage opens a tab in a new browser context of the shared Chromium,
// closed when t ends; its actions must finish within testTimeout. Without
// Chromium, t skips, or fails under PUSHUP_REQUIRE_BROWSER=1.
func newPage(t *testing.T, name string) context.Context {
	t.Helper()
	path := chromiumOrSkip(t)
	shared.once.Do(func() {
		start := time.Now()
		startBrowser(path)
		t.Logf("started %s in %s", path, time.Since(start).Round(time.Millisecond))
	})
	if shared.err != nil {
		t.Fatalf("%v\nchromium output:\n%s", shared.err, chromiumOutput())
	}
	ctx, cancel := chromedp.NewContext(shared.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Do(ctx), "opening page %s", name)
	watchConsole(t, ctx, name)
	t.Cleanup(func() {
		if t.Failed() {
			screenshot(t, ctx, strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+"-failed")
		}
	})
	return bounded(t, ctx)
}

// chromiumOrSkip returns the Chromium binary, or skips t (fails it under
// PUSHUP_REQUIRE_BROWSER=1): a test with slow set-up calls it first, and
// opens its pages, whose time is bounded, once set up.
func chromiumOrSkip(t *testing.T) string {
	t.Helper()
	path := findChromium()
	if path == "" {
		if os.Getenv(requireBrowserEnv) == "1" {
			t.Fatalf("%s (%s=1: a missing browser is a failure)", installHint, requireBrowserEnv)
		}
		t.Skipf("%s; skipping (set %s=1 to fail instead)", installHint, requireBrowserEnv)
	}
	return path
}

// chromiumOutput is the end of Chromium's output, without the complaints
// about a missing D-Bus that every container run prints.
func chromiumOutput() string {
	var keep []string
	for _, line := range strings.Split(shared.out.String(), "\n") {
		if !strings.Contains(line, "dbus") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep[max(0, len(keep)-30):], "\n")
}

// bounded returns ctx limited to the test's time budget.
func bounded(t *testing.T, ctx context.Context) context.Context {
	ctx, cancel := context.WithTimeout(ctx, testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// watchConsole logs the tab's console output and uncaught exceptions:
// shown with -v or when the test fails, they are what explains a page
// that did not do what the test waited for.
func watchConsole(t *testing.T, ctx context.Context, tab string) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for ev, err := range chromedp.Events(ctx, runtime.ConsoleAPICalled) {
			if err != nil {
				return
			}
			var args []string
			for _, a := range ev.Args {
				if len(a.Value) > 0 {
					args = append(args, string(a.Value))
				} else {
					args = append(args, a.Description)
				}
			}
			t.Logf("[%s console.%s] %s", tab, ev.Type, strings.Join(args, " "))
		}
	})
	wg.Go(func() {
		for ev, err := range chromedp.Events(ctx, runtime.ExceptionThrown) {
			if err != nil {
				return
			}
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			t.Logf("[%s exception] %s", tab, msg)
		}
	})
	// Stop before the test ends: t.Logf afterwards would panic.
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// run runs actions, failing t on error.
func run(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx, actions...))
}

// eval evaluates a JavaScript expression, awaiting a promise, and decodes
// its value into T.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	require.NoError(t, err, "evaluating %s", expr)
	return v
}

// waitFor waits in the page until expr is truthy, failing t after within.
func waitFor(t *testing.T, ctx context.Context, what, expr string, within time.Duration) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(pollEvery), chromedp.WithPollingTimeout(within)))
	require.NoError(t, err, "waiting %s for %s (%s)", within, what, expr)
}

// screenshot saves a PNG of the tab as a test artifact and logs its path.
func screenshot(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	dir := os.Getenv(artifactsEnv)
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	path := filepath.Join(dir, name+".png")
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
	return path
}

// pushupServer is a PushUp server (broker and HTTP API) on a random
// loopback port.
type pushupServer struct {
	URL string
	B   *broker.Broker
}

// startPushup starts a server with the demo on; configure may change the
// API configuration first. It is shut down when t ends.
func startPushup(t *testing.T, configure func(*api.Config)) *pushupServer {
	t.Helper()
	b, err := broker.New(broker.DefaultConfig())
	require.NoError(t, err)
	demoPlugin, err := demo.NewPlugin(demo.DefaultConfig())
	require.NoError(t, err)
	cfg := api.DefaultConfig()
	cfg.Plugins = []api.Plugin{demoPlugin}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if configure != nil {
		configure(&cfg)
	}
	srv, err := api.New(b, cfg)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		require.NoError(t, <-served)
	})
	return &pushupServer{URL: "http://" + ln.Addr().String(), B: b}
}

// waiting returns how many subscriptions wait on channel.
func waiting(srv *pushupServer, channel string) int {
	info, err := srv.B.Info(channel)
	if err != nil {
		return 0
	}
	return info.Waiters
}

// serve runs h on a random loopback port until t ends and returns its URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// lockedBuffer collects Chromium's output, written from another goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}
