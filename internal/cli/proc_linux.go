package cli

import "syscall"

// dieWithParent asks Linux to send CMD SIGTERM when kvop dies without stopping it (SIGKILL,
// a crash): kvop's leadership ends with it, so its CMD should too.
func dieWithParent(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGTERM }
