//go:build linux

package api

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// osThreadLimits returns the limits Linux puts on making another thread
// that apply to this process, each with a way to count what is in use:
//
//   - kernel.threads-max and kernel.pid_max, machine-wide (every thread
//     has a pid), against the machine's thread count from /proc/loadavg;
//   - the pids cgroup's pids.max, against its pids.current;
//   - RLIMIT_NPROC, per user, unless running as root (the kernel does not
//     apply it to root). It is compared with every thread on the machine,
//     which over-counts: a user's threads cannot be counted cheaply.
//
// Limits that cannot be read are left out.
func osThreadLimits() []threadLimit {
	var out []threadLimit
	for _, k := range []struct{ name, file string }{
		{"kernel.threads-max", "/proc/sys/kernel/threads-max"},
		{"kernel.pid_max", "/proc/sys/kernel/pid_max"},
	} {
		if n, err := readIntFile(k.file); err == nil {
			out = append(out, threadLimit{name: k.name, limit: n, used: machineThreads})
		}
	}
	if dir := pidsCgroupDir(); dir != "" {
		if n, err := readIntFile(path.Join(dir, "pids.max")); err == nil {
			cur := path.Join(dir, "pids.current")
			out = append(out, threadLimit{name: "cgroup pids.max", limit: n, used: func() (int, error) { return readIntFile(cur) }})
		}
	}
	var nproc unix.Rlimit
	if os.Geteuid() != 0 && unix.Getrlimit(unix.RLIMIT_NPROC, &nproc) == nil && nproc.Cur < math.MaxInt32 {
		out = append(out, threadLimit{name: "RLIMIT_NPROC (ulimit -u)", limit: int(nproc.Cur), used: machineThreads})
	}
	return out
}

// machineThreads counts the threads of every process on the machine: the
// number after the slash in /proc/loadavg's fourth field ("2/583").
func machineThreads() (int, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, err
	}
	return parseLoadavgThreads(b)
}

func parseLoadavgThreads(b []byte) (int, error) {
	f := bytes.Fields(b)
	if len(f) < 4 {
		return 0, fmt.Errorf("api: /proc/loadavg %q: want at least 4 fields", b)
	}
	_, total, ok := bytes.Cut(f[3], []byte{'/'})
	if !ok {
		return 0, fmt.Errorf("api: /proc/loadavg field %q: want running/total", f[3])
	}
	return strconv.Atoi(string(total))
}

// pidsCgroupDir returns this process's pids cgroup directory (cgroup v2,
// or the v1 pids controller), or "" if there is none.
func pidsCgroupDir() string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	return pidsCgroupDirFrom(string(b), "/sys/fs/cgroup")
}

// pidsCgroupDirFrom finds the pids cgroup in /proc/self/cgroup's lines
// ("hierarchy:controllers:path"), preferring the v1 pids controller.
func pidsCgroupDirFrom(cgroup, root string) string {
	v2 := ""
	for line := range strings.SplitSeq(strings.TrimSpace(cgroup), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for c := range strings.SplitSeq(parts[1], ",") {
			if c == "pids" {
				return path.Join(root, "pids", parts[2])
			}
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = path.Join(root, parts[2])
		}
	}
	return v2
}

// readIntFile reads a file holding one integer; "max" (no limit) is an
// error, so the limit is left out.
func readIntFile(name string) (int, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(bytes.TrimSpace(b)))
}
