package clientconfig

import (
	"strings"
	"testing"
	"time"
)

// TestDaemonPolicy: the daemon mapping sets each policy; what it leaves out keeps its
// default, and the jitter follows the interval unless set.
func TestDaemonPolicy(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       Daemon
	}{
		{"none", "url: http://h\n", DefaultDaemon()},
		{"interval only", "daemon:\n  interval: 1s\n",
			Daemon{Interval: time.Second, Jitter: 100 * time.Millisecond, Download: Manual, Install: Manual, Reboot: RebootNever, StallTimeout: 10 * time.Minute, Group: "ota"}},
		{"everything", "daemon:\n  interval: 2h\n  jitter: 0s\n  download: auto\n  install: auto\n  reboot: window\n" +
			"  maintenance-window: \"23:30-01:15\"\n  stall-timeout: 30s\n  group: updaters\n",
			Daemon{Interval: 2 * time.Hour, Download: Auto, Install: Auto, Reboot: RebootWindow,
				Window: Window{23*time.Hour + 30*time.Minute, time.Hour + 15*time.Minute}, StallTimeout: 30 * time.Second, Group: "updaters"}},
		{"no periodic check", "daemon:\n  interval: 0s\n  reboot: immediately\n",
			Daemon{Download: Manual, Install: Manual, Reboot: RebootImmediately, StallTimeout: 10 * time.Minute, Group: "ota"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, map[string]string{"etc/ota/client.yaml": tc.yaml})
			c, err := Load(root, "")
			if err != nil {
				t.Fatal(err)
			}
			if c.Daemon != tc.want {
				t.Errorf("got  %+v\nwant %+v", c.Daemon, tc.want)
			}
		})
	}
}

// TestDaemonPolicyErrors: each mistake is one line at its line.
func TestDaemonPolicyErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"daemon:\n  interval: 6\n", `client.yaml:2: invalid duration "6" (want e.g. 30s, 15m, 6h)`},
		{"daemon:\n  interval: -1s\n", `client.yaml:2: invalid duration "-1s"`},
		{"daemon:\n  download: always\n", `client.yaml:2: "always": want auto or manual`},
		{"daemon:\n  reboot: later\n", `client.yaml:2: "later": want never, immediately or window`},
		{"daemon:\n  interval: 1h\n  reboot: window\n", `client.yaml:3: reboot: window needs a maintenance-window`},
		{"daemon:\n  maintenance-window: 2-4\n", `client.yaml:2: invalid maintenance window "2-4" (want HH:MM-HH:MM`},
		{"daemon:\n  maintenance-window: 02:00-02:00\n", `client.yaml:2: maintenance window "02:00-02:00" is empty`},
		{"daemon:\n  stall-timeout: 0s\n", `client.yaml:2: stall-timeout must be positive`},
		{"daemon:\n  intervall: 1h\n", `client.yaml:2: unknown key "intervall" (want download, group, install, interval, jitter, maintenance-window, reboot, stall-timeout)`},
		{"daemon: auto\n", `client.yaml:1: want a mapping`},
	} {
		root := t.TempDir()
		writeFiles(t, root, map[string]string{"etc/ota/client.yaml": tc.yaml})
		_, err := Load(root, "")
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %v, want one line containing %q", tc.yaml, err, tc.want)
		}
	}
}

// TestWindow: a window contains the times from its start to its end, across midnight too,
// and Next is the next opening.
func TestWindow(t *testing.T) {
	at := func(day, h, m int) time.Time { return time.Date(2026, 3, day, h, m, 0, 0, time.UTC) }
	night, _ := ParseWindow("23:30-01:15")
	early, _ := ParseWindow("02:00-04:00")
	for _, tc := range []struct {
		w    Window
		t    time.Time
		in   bool
		next time.Time
	}{
		{early, at(10, 1, 59), false, at(10, 2, 0)},
		{early, at(10, 2, 0), true, at(10, 2, 0)},
		{early, at(10, 3, 59), true, at(10, 3, 59)},
		{early, at(10, 4, 0), false, at(11, 2, 0)},
		{night, at(10, 23, 29), false, at(10, 23, 30)},
		{night, at(10, 23, 45), true, at(10, 23, 45)},
		{night, at(11, 0, 30), true, at(11, 0, 30)},
		{night, at(11, 1, 15), false, at(11, 23, 30)},
	} {
		if got := tc.w.Contains(tc.t); got != tc.in {
			t.Errorf("%v contains %v: %v, want %v", tc.w, tc.t, got, tc.in)
		}
		if got := tc.w.Next(tc.t); !got.Equal(tc.next) {
			t.Errorf("%v next after %v: %v, want %v", tc.w, tc.t, got, tc.next)
		}
	}
	if s := night.String(); s != "23:30-01:15" {
		t.Errorf("String: %q", s)
	}
}
