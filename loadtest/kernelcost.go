package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pushuphq/pushup/internal/testbed"
)

// ErrPerf: perf(1), which counts system calls and samples stacks, is
// missing or failed.
var ErrPerf = errors.New("loadtest: perf")

// procCost is what a process tree has cost so far: CPU time split into
// user and kernel, and the bytes its read- and write-type system calls
// moved (rchar and wchar of /proc/<pid>/io: for a server that touches no
// files while it fans out, the bytes it wrote to and read from sockets).
type procCost struct {
	User, Sys    float64
	RChar, WChar int64
	Threads      int
}

// treePIDs returns pid and its direct children (nginx's workers); just
// pid if /proc cannot be listed (reading pid's own files then says why).
func treePIDs(pid int) []int {
	pids := []int{pid}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return pids
	}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if ppid, err := parseProcStatPPID(stat); err == nil && ppid == pid {
			pids = append(pids, child)
		}
	}
	return pids
}

// readTreeCost sums procCost over pid and its children.
func readTreeCost(pid int) (procCost, error) {
	var c procCost
	for _, p := range treePIDs(pid) {
		dir := "/proc/" + strconv.Itoa(p)
		stat, err := os.ReadFile(dir + "/stat")
		if err != nil {
			if p == pid {
				return c, err
			}
			continue
		}
		user, sys, err := parseProcStatUserSys(stat)
		if err != nil {
			return c, fmt.Errorf("%s/stat: %w", dir, err)
		}
		io, err := os.ReadFile(dir + "/io")
		if err != nil {
			return c, err
		}
		rchar, wchar, err := parseProcIO(io)
		if err != nil {
			return c, fmt.Errorf("%s/io: %w", dir, err)
		}
		if tasks, err := os.ReadDir(dir + "/task"); err == nil {
			c.Threads += len(tasks)
		}
		c.User += user
		c.Sys += sys
		c.RChar += rchar
		c.WChar += wchar
	}
	return c, nil
}

func (c procCost) sub(from procCost) procCost {
	return procCost{User: c.User - from.User, Sys: c.Sys - from.Sys, RChar: c.RChar - from.RChar, WChar: c.WChar - from.WChar, Threads: c.Threads}
}

// parseProcStatUserSys returns utime and stime (fields 14 and 15 of
// /proc/<pid>/stat) in seconds.
func parseProcStatUserSys(stat []byte) (user, sys float64, err error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("no command name")
	}
	fields := bytes.Fields(stat[i+1:])
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return 0, 0, fmt.Errorf("%d fields after the command name, want at least 13", len(fields))
	}
	u, err1 := strconv.ParseUint(string(fields[11]), 10, 64)
	s, err2 := strconv.ParseUint(string(fields[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("utime %q, stime %q", fields[11], fields[12])
	}
	return float64(u) / userHZ, float64(s) / userHZ, nil
}

// parseProcIO returns rchar and wchar from /proc/<pid>/io.
func parseProcIO(text []byte) (rchar, wchar int64, err error) {
	var found int
	for line := range bytes.Lines(text) {
		name, value, ok := bytes.Cut(bytes.TrimSpace(line), []byte(": "))
		if !ok {
			continue
		}
		v, perr := strconv.ParseInt(string(value), 10, 64)
		switch string(name) {
		case "rchar":
			rchar, err = v, perr
			found++
		case "wchar":
			wchar, err = v, perr
			found++
		}
		if err != nil {
			return 0, 0, err
		}
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("no rchar and wchar lines")
	}
	return rchar, wchar, nil
}

// KernelMemory is what the kernel holds, machine wide, at one moment:
// both ends of every loopback connection count, and so does every other
// process's, so compare two readings taken close together.
type KernelMemory struct {
	// TCPBuffers is the memory of TCP socket buffers: the "mem" pages of
	// the TCP line of /proc/net/sockstat, in bytes. An idle connection
	// holds none.
	TCPBuffers int64 `json:"tcp_buffer_bytes"`
	// TCPSockets is that line's "inuse": open TCP sockets in this network
	// namespace (a loopback connection is two).
	TCPSockets int64 `json:"tcp_sockets"`
	// Slab is Slab: of /proc/meminfo, in bytes: every kernel object cache.
	Slab int64 `json:"slab_bytes"`
	// SocketSlab is the part of the slab a socket's own records take:
	// active objects times object size of the caches in socketSlabCaches
	// (/proc/slabinfo, readable by root; 0 if it cannot be read).
	SocketSlab int64 `json:"socket_slab_bytes"`
}

// socketSlabCaches are the slab caches each TCP socket of a server or
// client adds an object to: the socket (TCP: struct tcp_sock), its inode
// (sock_inode_cache), its open file (filp) and its epoll registration
// (eventpoll_epi). Its dentry (192 B) is left out: the dentry cache also
// moves with every file any process opens, which would drown it.
var socketSlabCaches = []string{"TCP", "sock_inode_cache", "filp", "eventpoll_epi"}

// readKernelMemory reads KernelMemory now.
func readKernelMemory() (KernelMemory, error) {
	var k KernelMemory
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return k, err
	}
	pages, inuse, err := parseSockstatTCP(b)
	if err != nil {
		return k, err
	}
	k.TCPBuffers, k.TCPSockets = pages*int64(os.Getpagesize()), inuse
	if b, err = os.ReadFile("/proc/meminfo"); err != nil {
		return k, err
	}
	if k.Slab, err = parseKBLine(b, "Slab:"); err != nil {
		return k, err
	}
	if b, err = os.ReadFile("/proc/slabinfo"); err == nil {
		k.SocketSlab = parseSlabinfo(b, socketSlabCaches)
	}
	return k, nil
}

// parseSockstatTCP returns the mem (pages) and inuse fields of
// sockstat's "TCP:" line.
func parseSockstatTCP(text []byte) (pages, inuse int64, err error) {
	for line := range bytes.Lines(text) {
		rest, ok := bytes.CutPrefix(line, []byte("TCP:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		found := 0
		for i := 0; i+1 < len(f); i += 2 {
			v, perr := strconv.ParseInt(string(f[i+1]), 10, 64)
			switch string(f[i]) {
			case "mem":
				pages, err = v, perr
				found++
			case "inuse":
				inuse, err = v, perr
				found++
			}
			if err != nil {
				return 0, 0, err
			}
		}
		if found != 2 {
			return 0, 0, fmt.Errorf("sockstat: TCP line without mem and inuse: %q", bytes.TrimSpace(line))
		}
		return pages, inuse, nil
	}
	return 0, 0, fmt.Errorf("sockstat: no TCP line")
}

// parseSlabinfo sums active objects times object size over the named
// caches of /proc/slabinfo (version 2.1: name, active_objs, num_objs,
// objsize, ...). Caches it does not list count 0.
func parseSlabinfo(text []byte, caches []string) int64 {
	var sum int64
	for line := range bytes.Lines(text) {
		f := bytes.Fields(line)
		if len(f) < 4 || !slices.Contains(caches, string(f[0])) {
			continue
		}
		active, err1 := strconv.ParseInt(string(f[1]), 10, 64)
		size, err2 := strconv.ParseInt(string(f[3]), 10, 64)
		if err1 == nil && err2 == nil {
			sum += active * size
		}
	}
	return sum
}

// countedSyscalls are the system calls counted one by one; the total
// counts every one (raw_syscalls:sys_enter).
var countedSyscalls = []string{
	"read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg",
	"epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "accept4", "close",
	"futex", "nanosleep", "sched_yield", "getrusage", "tgkill", "rt_sigreturn", "madvise", "mmap",
}

// syscallTotal is the key of every system call together in a count.
const syscallTotal = "all"

// perfProcess is a perf(1) run attached to running processes, stopped
// with SIGINT.
type perfProcess struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
	err  error
}

// startPerf runs perf with args, attached to pids (their threads at the
// time it starts: the servers measured here start theirs before they
// park a subscriber), and returns once it counts. perf starts with its
// events disabled and is enabled through its control pipe, whose
// acknowledgement says that the events are on: attaching takes a while
// on a loaded machine, and a fixed pause missed a whole publish.
func startPerf(args []string, pids []int) (*perfProcess, error) {
	bin, err := exec.LookPath("perf")
	if err != nil {
		return nil, fmt.Errorf("%w: not installed (apt-get install linux-perf): %v", ErrPerf, err)
	}
	ps := make([]string, len(pids))
	for i, p := range pids {
		ps[i] = strconv.Itoa(p)
	}
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	ackR, ackW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return nil, err
	}
	defer ackR.Close()
	p := &perfProcess{done: make(chan struct{})}
	// ExtraFiles are fds 3 (control) and 4 (acknowledgements) in perf.
	args = append(args, "-D", "-1", "--control", "fd:3,4", "-p", strings.Join(ps, ","))
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.ExtraFiles = []*os.File{ctlR, ackW}
	testbed.SetDeathSignal(p.cmd)
	err = p.cmd.Start()
	ctlR.Close()
	ackW.Close()
	if err != nil {
		ctlW.Close()
		return nil, fmt.Errorf("%w: %v", ErrPerf, err)
	}
	// This goroutine belongs to the perf process: it ends when it exits,
	// and only then closes the control pipe's write end: perf record (6.x)
	// reading EOF there gives up at once ("Thread and evlist pollfd index
	// mismatch"), leaving an empty profile.
	go func() { p.err = p.cmd.Wait(); ctlW.Close(); close(p.done) }()
	acked := make(chan error, 1)
	// This goroutine ends when perf acknowledges or exits (closing ackR's
	// other end).
	go func() {
		if _, err := io.WriteString(ctlW, "enable\n"); err != nil {
			acked <- err
			return
		}
		buf := make([]byte, 4)
		_, err := io.ReadFull(ackR, buf)
		acked <- err
	}()
	select {
	case err = <-acked:
	case <-time.After(30 * time.Second):
		err = fmt.Errorf("no acknowledgement within 30s")
	}
	if err != nil {
		_ = p.cmd.Process.Kill()
		<-p.done
		return nil, fmt.Errorf("%w: enabling its events: %v: %s", ErrPerf, err, bytes.TrimSpace(p.out.Bytes()))
	}
	return p, nil
}

// stop ends perf with SIGINT, as at a terminal, and returns what it
// printed.
func (p *perfProcess) stop() ([]byte, error) {
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return p.out.Bytes(), fmt.Errorf("%w: did not stop within 30s of SIGINT", ErrPerf)
	}
	return p.out.Bytes(), nil
}

// startSyscallCount counts the system calls of pids until stop.
func startSyscallCount(pids []int) (*perfProcess, error) {
	events := []string{"raw_syscalls:sys_enter"}
	for _, name := range countedSyscalls {
		// Not every kernel has every call (epoll_pwait2 is 5.11+).
		if _, err := os.Stat("/sys/kernel/tracing/events/syscalls/sys_enter_" + name); err == nil {
			events = append(events, "syscalls:sys_enter_"+name)
		}
	}
	return startPerf([]string{"stat", "-x,", "-e", strings.Join(events, ",")}, pids)
}

// parsePerfStatCSV reads perf stat -x, output: a count per system call
// (the tracepoint's name without sys_enter_) and the total under
// syscallTotal. Calls not made are left out.
func parsePerfStatCSV(out []byte) (map[string]int64, error) {
	counts := map[string]int64{}
	for line := range bytes.Lines(out) {
		f := strings.Split(strings.TrimSpace(string(line)), ",")
		if len(f) < 3 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue // "<not counted>", "<not supported>"
		}
		switch name := f[2]; {
		case name == "raw_syscalls:sys_enter":
			counts[syscallTotal] = n
		case strings.HasPrefix(name, "syscalls:sys_enter_"):
			if n > 0 {
				counts[strings.TrimPrefix(name, "syscalls:sys_enter_")] = n
			}
		}
	}
	if _, ok := counts[syscallTotal]; !ok {
		return nil, fmt.Errorf("%w: no raw_syscalls:sys_enter count in perf stat's output: %s", ErrPerf, bytes.TrimSpace(out))
	}
	return counts, nil
}

// PerfAvailable reports whether perf(1) is on the PATH, to count system
// calls with.
func PerfAvailable() bool {
	_, err := exec.LookPath("perf")
	return err == nil
}
