package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is Linux's USER_HZ, the unit of utime and stime in
// /proc/<pid>/stat; 100 on every mainstream Linux build.
const clockTicks = 100

// cpuTime returns the user+system CPU time a process used so far (0 when it
// cannot be read, e.g. pid 0 or not Linux).
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// fields after the last ')' start with field 3 (state).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// findPIDs returns the processes whose executable is dir/name, for each
// name: Vault runs every plugin as a child process from its plugin
// directory.
func findPIDs(dir string, names ...string) map[string]int {
	out := map[string]int{}
	if dir == "" {
		return out
	}
	want := map[string]string{}
	for _, n := range names {
		p, err := filepath.Abs(filepath.Join(dir, n))
		if err == nil {
			if r, err := filepath.EvalSymlinks(p); err == nil {
				p = r
			}
			want[p] = n
		}
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			continue
		}
		if n, ok := want[strings.TrimSuffix(exe, " (deleted)")]; ok {
			out[n] = pid
		}
	}
	return out
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}
