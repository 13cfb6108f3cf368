package loadtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/pushuphq/pushup/internal/testbed"
)

// Machine describes the host a sweep ran on, for its report: results
// from a 2-core VM shared by client and servers do not compare with the
// paper's 4-core cluster nodes without saying so. Fields that cannot be
// read are left empty.
type Machine struct {
	// CPU is /proc/cpuinfo's first "model name".
	CPU string `json:"cpu"`
	// Cores is the number of logical CPUs this process may use.
	Cores int `json:"cores"`
	// MemoryBytes is MemTotal from /proc/meminfo.
	MemoryBytes int64 `json:"memory_bytes"`
	// Kernel is the kernel release.
	Kernel    string `json:"kernel"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	GoVersion string `json:"go_version"`
	// OpenFileLimit is this process's open-file limit, raised to the
	// hard limit (testbed.RaiseFileLimit); servers inherit it.
	OpenFileLimit uint64 `json:"open_file_limit"`
	// PIDMax and ThreadsMax bound the threads of the whole machine
	// (every thread has a pid), which the thread model runs into first.
	PIDMax     int `json:"pid_max"`
	ThreadsMax int `json:"threads_max"`
}

// DescribeMachine reads the description of this host.
func DescribeMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPU = procField(b, "model name")
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(procField(b, "MemTotal")); len(f) == 2 && f[1] == "kB" {
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			m.MemoryBytes = kb << 10
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = string(bytes.TrimSpace(b))
	}
	m.OpenFileLimit, _ = testbed.RaiseFileLimit()
	m.PIDMax = readProcInt("/proc/sys/kernel/pid_max")
	m.ThreadsMax = readProcInt("/proc/sys/kernel/threads-max")
	return m
}

// String is a one-line description.
func (m Machine) String() string {
	cpu := m.CPU
	if cpu == "" {
		cpu = "unknown CPU"
	}
	s := fmt.Sprintf("%d cores (%s), %.1f GiB RAM, %s/%s", m.Cores, cpu, float64(m.MemoryBytes)/(1<<30), m.GOOS, m.GOARCH)
	if m.Kernel != "" {
		s += " " + m.Kernel
	}
	s += ", " + m.GoVersion
	if m.OpenFileLimit > 0 {
		s += fmt.Sprintf(", %d open files per process", m.OpenFileLimit)
	}
	if m.PIDMax > 0 {
		s += fmt.Sprintf(", pid_max %d", m.PIDMax)
	}
	return s
}

// procField returns the value of the first "key: value" line of a /proc
// file, trimmed.
func procField(b []byte, key string) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// readProcInt reads a /proc file holding one integer; 0 if it cannot.
func readProcInt(name string) int {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(string(bytes.TrimSpace(b)))
	return n
}
