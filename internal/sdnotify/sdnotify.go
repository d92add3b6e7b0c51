// Package sdnotify speaks systemd's notification protocol: readiness,
// stopping, and watchdog keep-alives, sent as datagrams to $NOTIFY_SOCKET.
// Outside systemd (no socket) every call is a no-op.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package sdnotify

import (
	"net"
	"os"
	"strconv"
	"time"
)

// Notify sends one state line such as "READY=1" or "WATCHDOG=1". It reports
// whether a socket was there to send to.
func Notify(state string) (bool, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return false, nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract socket
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err == nil, err
}

// WatchdogInterval is the keep-alive period systemd expects
// (WatchdogSec=), or 0 when the watchdog is off or meant for another
// process.
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond
}
