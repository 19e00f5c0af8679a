package daemon

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// The priority of the process while it downloads and deploys: nice 10, and the idle I/O
// class (disk time only when no other process wants it).
const (
	lowNice = 10

	ioprioWhoProcess = 1  // IOPRIO_WHO_PROCESS
	ioprioClassShift = 13 // IOPRIO_CLASS_SHIFT
	ioprioClassIdle  = 3  // IOPRIO_CLASS_IDLE
)

// IdleIOPriority is the I/O priority value of the idle class.
const IdleIOPriority = ioprioClassIdle << ioprioClassShift

// lowPriority gives every thread of the process the low CPU and I/O priority, and returns
// what gives them back the priority the process had. Linux keeps both per thread, and a
// new thread takes its creator's: the Go runtime's threads, present and future, all run at
// the low priority until restore.
func lowPriority() (restore func() error, err error) {
	pid := os.Getpid()
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, pid)
	if err != nil {
		return nil, err
	}
	nice := 20 - prio // the system call returns 20 - nice
	io, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(pid), 0)
	if errno != 0 {
		return nil, errno
	}
	if io>>ioprioClassShift == 0 {
		io = 0 // no class: the kernel refuses a level with it
	}
	if err := setThreads(max(nice, lowNice), IdleIOPriority); err != nil {
		return nil, err
	}
	return func() error { return setThreads(nice, int(io)) }, nil
}

// setThreads sets the nice value and the I/O priority of every thread of the process.
func setThreads(nice, ioprio int) error {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	var first error
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil && err != unix.ESRCH && first == nil {
			first = err
		}
		if _, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), uintptr(ioprio)); errno != 0 && errno != unix.ESRCH && first == nil {
			first = errno
		}
	}
	return first
}
