//go:build linux

package netns

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// requireNetnsEnv makes a missing root, ip or nft a failure instead of a
// skip; .ci/run sets it.
const requireNetnsEnv = "PUSHUP_REQUIRE_NETNS"

// nsPrefix starts the name of every namespace the tests create, followed
// by the test process's pid, so that a run killed before its cleanup can
// be told from one still running, and its namespaces removed.
const nsPrefix = "pushupnt"

// subnet is the lab's network, inside its namespaces only: node i is
// 10.77.0.i, the test's clients use the hub's 10.77.0.254.
const (
	subnetPrefix = "10.77.0."
	hubIP        = subnetPrefix + "254"
)

// skipOrFail skips the test with why, or fails it when the environment
// requires these tests to run.
func skipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv(requireNetnsEnv) == "1" {
		t.Fatalf("%s, and %s=1 requires the network namespace tests", why, requireNetnsEnv)
	}
	t.Skipf("%s: skipping the network namespace tests (they need root, iproute2 and nftables; set %s=1 to make this a failure)", why, requireNetnsEnv)
}

// lab is a hub namespace holding a bridge, and one namespace per node
// with a veth pair to the bridge. Cleanup deletes every namespace, which
// removes the links, addresses and nft rules in them.
type lab struct {
	t     *testing.T
	hub   string   // the hub namespace's name
	nodes []string // the nodes' namespace names
	hubNS *os.File // the hub namespace, for the test's sockets
}

// nodeIP is node i's address (i from 0).
func nodeIP(i int) string { return subnetPrefix + strconv.Itoa(i+1) }

// newLab creates a lab of n node namespaces, or skips the test if this
// machine cannot.
func newLab(t *testing.T, n int) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "not running as root")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, tool+" is not installed")
		}
	}
	removeStaleNamespaces(t)
	base := fmt.Sprintf("%s%d-%s", nsPrefix, os.Getpid(), strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
	l := &lab{t: t, hub: base + "-hub"}
	// Register the cleanup first: whatever got made is removed.
	t.Cleanup(l.remove)
	if err := ip("netns", "add", l.hub); err != nil {
		skipOrFail(t, "cannot create a network namespace ("+err.Error()+")")
	}
	l.must("-n", l.hub, "link", "set", "lo", "up")
	l.must("-n", l.hub, "link", "add", "br0", "type", "bridge")
	l.must("-n", l.hub, "addr", "add", hubIP+"/24", "dev", "br0")
	l.must("-n", l.hub, "link", "set", "br0", "up")
	for i := range n {
		ns := fmt.Sprintf("%s-n%d", base, i+1)
		l.must("netns", "add", ns)
		l.nodes = append(l.nodes, ns)
		veth := fmt.Sprintf("v%d", i+1)
		// Made inside the hub, its peer moved straight into the node's
		// namespace: no link ever exists in the test's own namespace.
		l.must("-n", l.hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
		l.must("-n", l.hub, "link", "set", veth, "master", "br0")
		l.must("-n", l.hub, "link", "set", veth, "up")
		l.must("-n", ns, "link", "set", "lo", "up")
		l.must("-n", ns, "addr", "add", nodeIP(i)+"/24", "dev", "eth0")
		l.must("-n", ns, "link", "set", "eth0", "up")
	}
	f, err := os.Open("/run/netns/" + l.hub)
	if err != nil {
		t.Fatalf("opening the hub namespace: %v", err)
	}
	l.hubNS = f
	return l
}

// remove deletes the lab's namespaces (and so everything in them).
func (l *lab) remove() {
	if l.hubNS != nil {
		l.hubNS.Close()
	}
	for _, ns := range append(l.nodes, l.hub) {
		if err := ip("netns", "del", ns); err != nil && !strings.Contains(err.Error(), "No such file") {
			l.t.Errorf("removing namespace %s: %v", ns, err)
		}
	}
}

// removeStaleNamespaces deletes namespaces left by an earlier run of these
// tests that was killed before its cleanup (its pid no longer runs).
func removeStaleNamespaces(t *testing.T) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for line := range strings.Lines(string(out)) {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		if n, err := strconv.Atoi(pid); err != nil || n == os.Getpid() {
			continue
		} else if _, err := os.Stat("/proc/" + pid); err == nil {
			continue // another run of these tests, still going
		}
		if err := ip("netns", "del", name); err == nil {
			t.Logf("removed namespace %s left by an earlier run", name)
		}
	}
}

func (l *lab) must(args ...string) {
	l.t.Helper()
	if err := ip(args...); err != nil {
		l.t.Fatal(err)
	}
}

// ip runs ip(8).
func ip(args ...string) error {
	return run("ip", args...)
}

func run(cmd string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cmd, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", cmd, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// nft loads an nftables script into node i's namespace.
func (l *lab) nft(i int, script string) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.nodes[i], "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("nft in %s: %v: %s\n%s", l.nodes[i], err, out, script)
	}
}

// others lists every node address but node i's.
func (l *lab) others(i int) string {
	var ips []string
	for j := range l.nodes {
		if j != i {
			ips = append(ips, nodeIP(j))
		}
	}
	return strings.Join(ips, ", ")
}

// cut drops every packet between node i and the other nodes, both ways;
// the test's clients (on the hub) still reach it.
func (l *lab) cut(i int) {
	l.t.Helper()
	o := l.others(i)
	l.nft(i, fmt.Sprintf(`table inet pushupcut {
	chain in { type filter hook input priority 0; policy accept; ip saddr { %s } drop; }
	chain out { type filter hook output priority 0; policy accept; ip daddr { %s } drop; }
}
`, o, o))
}

// heal removes node i's cut.
func (l *lab) heal(i int) {
	l.t.Helper()
	l.nft(i, "delete table inet pushupcut\n")
}

// loss drops percent of the packets every node receives from the other
// nodes (this kernel has no netem: nft's numgen draws the dice).
func (l *lab) loss(percent int) {
	l.t.Helper()
	for i := range l.nodes {
		l.nft(i, fmt.Sprintf(`table inet pushuploss {
	chain in { type filter hook input priority 0; policy accept; ip saddr { %s } numgen random mod 100 < %d drop; }
}
`, l.others(i), percent))
	}
}

// noLoss removes the loss rules.
func (l *lab) noLoss() {
	l.t.Helper()
	for i := range l.nodes {
		l.nft(i, "delete table inet pushuploss\n")
	}
}

// wrapper writes a script that runs bin in node i's namespace with the
// arguments it is given; it execs, so the pid (and SIGKILL) is pushupd's.
func (l *lab) wrapper(i int, bin string) string {
	l.t.Helper()
	path := fmt.Sprintf("%s/pushupd-n%d", l.t.TempDir(), i+1)
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", l.nodes[i], bin)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		l.t.Fatal(err)
	}
	return path
}

// dial connects from the hub namespace: the socket is made on a thread
// switched into the hub (a socket keeps the namespace it was made in),
// and the thread switched back before it runs anything else.
func (l *lab) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, err}
			return
		}
		defer self.Close()
		if err := setns(l.hubNS); err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, err}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if setns(self) == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked and ends with this goroutine
		done <- result{c, err}
	}()
	r := <-done
	return r.c, r.err
}

// setns moves the calling thread into the network namespace f.
func setns(f *os.File) error {
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns: %w", err)
	}
	return nil
}
