// Package browsertest runs PushUp's browser side in a real browser:
// pushup.js against scripted fake servers and against a real PushUp
// server, cross-origin use, the README's example page, and the Q&A demo,
// driven through the Chrome DevTools protocol (chromedp) in headless
// Chromium.
//
// It holds only tests. They share one Chromium, started with a fresh
// profile by the first test that needs it; each test gets a new browser
// context (its own cookies, cache and storage) and servers on random
// loopback ports, and bounds every wait.
// Without Chromium the tests skip, saying how to install it; with
// PUSHUP_REQUIRE_BROWSER=1 (as in CI) they fail instead. PUSHUP_CHROMIUM
// names the browser binary when it is not on PATH, and screenshots go to
// PUSHUP_TEST_ARTIFACTS when set.
package browsertest
