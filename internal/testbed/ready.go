package testbed

import "net/http"

// ReadyPath is pushupd's readiness endpoint: 200 once the node serves
// (and, in a cluster, has joined it).
const ReadyPath = "/healthz/ready"

// Ready reports whether every pushupd at bases (base URLs, such as
// Daemon.URL) answers ReadyPath with 200 through client. It asks once
// each, in order, and stops at the first that is not ready: a test polls
// it with require.Eventually.
func Ready(client *http.Client, bases ...string) bool {
	for _, base := range bases {
		resp, err := client.Get(base + ReadyPath)
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
	}
	return true
}
