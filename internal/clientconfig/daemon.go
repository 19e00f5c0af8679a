package clientconfig

import (
	"fmt"
	"regexp"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// Daemon is the policy of ota-client daemon, client.yaml's daemon mapping.
type Daemon struct {
	// Interval is the time between two checks of the remote; 0: no periodic check.
	Interval time.Duration
	// Jitter is the most a random delay added to each wait may be (default: a tenth of
	// the interval), so that a fleet does not ask the server at the same moment.
	Jitter time.Duration
	// Download and Install are Auto (after a check finds an update, after a download) or
	// Manual (only when asked over D-Bus).
	Download, Install string
	// Reboot is RebootNever, RebootImmediately (once an update is installed) or
	// RebootWindow (in the next maintenance window).
	Reboot string
	// Window is the maintenance window; the zero Window is none.
	Window Window
	// StallTimeout cancels a check or a download that makes no progress for this long.
	StallTimeout time.Duration
	// Group is the group whose members may use the D-Bus interface, beside root.
	Group string
}

// The values of Daemon's policies.
const (
	Auto              = "auto"
	Manual            = "manual"
	RebootNever       = "never"
	RebootImmediately = "immediately"
	RebootWindow      = "window"
)

// DefaultDaemon returns the daemon's policy when the configuration sets none: a check
// every 6 hours, downloads, installs and reboots only when asked.
func DefaultDaemon() Daemon {
	return Daemon{Interval: 6 * time.Hour, Jitter: 36 * time.Minute, Download: Manual, Install: Manual,
		Reboot: RebootNever, StallTimeout: 10 * time.Minute, Group: "ota"}
}

// Window is a daily maintenance window in local time, from Start to End after midnight; it
// crosses midnight when End is before Start.
type Window struct {
	Start, End time.Duration
}

// IsZero reports whether w is no window.
func (w Window) IsZero() bool { return w == Window{} }

// String is the window as the configuration writes it, e.g. "02:00-04:30".
func (w Window) String() string {
	hm := func(d time.Duration) string { return fmt.Sprintf("%02d:%02d", int(d.Hours()), int(d.Minutes())%60) }
	return hm(w.Start) + "-" + hm(w.End)
}

// windowRE is a window: HH:MM-HH:MM.
var windowRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$`)

// ParseWindow parses a maintenance window, "HH:MM-HH:MM" in local time.
func ParseWindow(s string) (Window, error) {
	m := windowRE.FindStringSubmatch(s)
	if m == nil {
		return Window{}, fmt.Errorf("invalid maintenance window %q (want HH:MM-HH:MM, e.g. 02:00-04:00)", s)
	}
	at := func(h, min string) time.Duration {
		hh, _ := strconv.Atoi(h)
		mm, _ := strconv.Atoi(min)
		return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute
	}
	w := Window{at(m[1], m[2]), at(m[3], m[4])}
	if w.Start == w.End {
		return Window{}, fmt.Errorf("maintenance window %q is empty", s)
	}
	return w, nil
}

// sinceMidnight is the time of day of t, in t's location.
func sinceMidnight(t time.Time) time.Duration {
	y, mo, d := t.Date()
	return t.Sub(time.Date(y, mo, d, 0, 0, 0, 0, t.Location()))
}

// Contains reports whether t, in its location, is in the window.
func (w Window) Contains(t time.Time) bool {
	s := sinceMidnight(t)
	if w.Start < w.End {
		return s >= w.Start && s < w.End
	}
	return s >= w.Start || s < w.End
}

// Next returns t when it is in the window, else the next time the window opens.
func (w Window) Next(t time.Time) time.Time {
	if w.Contains(t) {
		return t
	}
	y, mo, d := t.Date()
	open := time.Date(y, mo, d, 0, 0, 0, 0, t.Location()).Add(w.Start)
	if open.Before(t) {
		open = time.Date(y, mo, d+1, 0, 0, 0, 0, t.Location()).Add(w.Start)
	}
	return open
}

// daemon decodes the daemon mapping into c.
func (d decoder) daemon(c *Daemon) func(*yaml.Node) error {
	return func(n *yaml.Node) error {
		jitterSet := false
		var rebootNode *yaml.Node
		err := d.mapping(n, map[string]func(*yaml.Node) error{
			"interval": d.duration(&c.Interval),
			"jitter": func(n *yaml.Node) error {
				jitterSet = true
				return d.duration(&c.Jitter)(n)
			},
			"download": d.oneOf(&c.Download, Auto, Manual),
			"install":  d.oneOf(&c.Install, Auto, Manual),
			"reboot": func(n *yaml.Node) error {
				rebootNode = n
				return d.oneOf(&c.Reboot, RebootNever, RebootImmediately, RebootWindow)(n)
			},
			"stall-timeout": func(n *yaml.Node) error {
				if err := d.duration(&c.StallTimeout)(n); err != nil {
					return err
				}
				if c.StallTimeout == 0 {
					return d.errorf(n, "stall-timeout must be positive")
				}
				return nil
			},
			"group": d.str(&c.Group),
			"maintenance-window": func(n *yaml.Node) error {
				v, err := d.scalar(n, "a window HH:MM-HH:MM")
				if err == nil {
					c.Window, err = ParseWindow(v)
				}
				if err != nil {
					return d.errorf(n, "%v", err)
				}
				return nil
			},
		})
		if err != nil {
			return err
		}
		if !jitterSet {
			c.Jitter = c.Interval / 10
		}
		if c.Reboot == RebootWindow && c.Window.IsZero() {
			return d.errorf(rebootNode, "reboot: window needs a maintenance-window")
		}
		return nil
	}
}

// duration decodes a Go duration such as 30s, 15m or 6h; not negative.
func (d decoder) duration(p *time.Duration) func(*yaml.Node) error {
	return func(n *yaml.Node) error {
		v, err := d.scalar(n, "a duration")
		if err != nil {
			return err
		}
		if *p, err = time.ParseDuration(v); err != nil || *p < 0 {
			return d.errorf(n, "invalid duration %q (want e.g. 30s, 15m, 6h)", v)
		}
		return nil
	}
}

// oneOf decodes a string that must be one of values.
func (d decoder) oneOf(p *string, values ...string) func(*yaml.Node) error {
	return func(n *yaml.Node) error {
		v, err := d.scalar(n, "a string")
		if err != nil {
			return err
		}
		for _, ok := range values {
			if v == ok {
				*p = v
				return nil
			}
		}
		return d.errorf(n, "%q: want %s", v, joinOr(values))
	}
}

// joinOr writes values as "a, b or c".
func joinOr(values []string) string {
	s := values[0]
	for i, v := range values[1:] {
		if i == len(values)-2 {
			s += " or " + v
		} else {
			s += ", " + v
		}
	}
	return s
}
