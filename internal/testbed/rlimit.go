package testbed

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// FileMargin is the number of file descriptors kept out of the connection
// budget for the process's own use: standard streams, the runtime's
// epoll descriptor, /proc files the monitor opens, pipes to child
// processes, publisher and metrics connections, and the test binary's own.
// 128 is several times what a run uses.
const FileMargin = 128

// RaiseFileLimit raises this process's soft limit on open files to its
// hard limit, which an unprivileged process may do, and returns the limit
// now in force. Child processes inherit it.
func RaiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("loadtest: reading the open-file limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("loadtest: raising the open-file limit to %d: %w", lim.Max, err)
		}
	}
	return lim.Cur, nil
}

// CheckFileBudget returns nil if conns connections fit in a process whose
// open-file limit is limit, keeping FileMargin for its own files, and an
// error wrapping ErrTooManyConnections that says how many were asked for
// and how many fit otherwise. who names the process in the message.
func CheckFileBudget(who string, conns int, limit uint64) error {
	fit := int64(limit) - FileMargin
	if int64(conns) <= fit {
		return nil
	}
	return fmt.Errorf("%w: %s: asked for %d connections, but the OS allows %d open files per process "+
		"and %d are kept for the process's own files, so at most %d fit "+
		"(raise the hard limit, e.g. ulimit -Hn or limits.conf, or use fewer subscribers)",
		ErrTooManyConnections, who, conns, limit, FileMargin, max(fit, 0))
}

// ProcessFileLimit reads the soft open-file limit of a local process from
// /proc/<pid>/limits.
func ProcessFileLimit(pid int) (uint64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		return 0, fmt.Errorf("loadtest: open-file limit of pid %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Max open files"); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				if fields[0] == "unlimited" {
					return 1<<63 - 1, nil
				}
				return strconv.ParseUint(fields[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("loadtest: no \"Max open files\" line in /proc/%d/limits", pid)
}
