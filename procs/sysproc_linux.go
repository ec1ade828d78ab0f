//go:build linux

package procs

import "syscall"

// sysProcAttr puts each instance in a process group of its own (so a stop reaches its workers too) and
// asks the kernel to SIGKILL it if the gateway dies without stopping it (Pdeathsig): no instance outlives
// a gateway killed with SIGKILL. Pdeathsig reaches the process the gateway started; its own children
// (gunicorn or uWSGI workers) see their master gone and exit by themselves.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// ParentDeathSignal reports whether instances are killed by the kernel when the gateway dies.
const ParentDeathSignal = true
