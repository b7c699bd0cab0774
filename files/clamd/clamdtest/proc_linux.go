package clamdtest

import "syscall"

// sysProcAttr kills clamd if the test binary dies without its cleanup (a panic, a timeout), so
// no daemon outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
