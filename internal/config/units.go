package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// sizeUnits are the suffixes a size may carry. K, M, G, T and their KiB… forms are powers of
// 1024, as in Docker's and GitLab's settings; KB, MB, GB, TB are powers of 1000.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// Size is a number of bytes that reads and prints with a unit: "64MiB", "512k", "1GB", "1048576".
type Size int64

// ParseSize reads a size: a whole number of bytes, or one followed by a unit (see sizeUnits),
// case-insensitive, with optional space before the unit.
func ParseSize(s string) (Size, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size: use bytes or a number with a unit, e.g. 64MiB, 512KiB, 1GiB", s)
	}
	if n > 0 && mult > (1<<62)/n {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return Size(n * mult), nil
}

// String prints the size in the largest binary unit that divides it: "64MiB", "1536KiB", "100B".
func (z Size) String() string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if z != 0 && int64(z)%u.mult == 0 {
			return strconv.FormatInt(int64(z)/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(z), 10) + "B"
}

// Set implements flag.Value.
func (z *Size) Set(s string) error {
	v, err := ParseSize(s)
	if err != nil {
		return err
	}
	*z = v
	return nil
}

// Age is a duration that also reads days: "90d", "36h", "1d12h"; "0" means never.
type Age time.Duration

// ParseAge reads a duration as time.ParseDuration does, plus a whole number of days ("90d")
// before the rest.
func ParseAge(s string) (Age, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty duration: use e.g. 90d, 720h or 0 (never)")
	}
	var days int64
	if i := strings.IndexByte(t, 'd'); i >= 0 {
		n, err := strconv.ParseInt(t[:i], 10, 64)
		if err != nil || n < 0 || n > 100000 {
			return 0, fmt.Errorf("%q is not a duration: use e.g. 90d, 720h or 1d12h", s)
		}
		days, t = n, t[i+1:]
	}
	var rest time.Duration
	if t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("%q is not a duration: use e.g. 90d, 720h or 1d12h", s)
		}
		rest = d
	}
	return Age(time.Duration(days)*24*time.Hour + rest), nil
}

// String prints whole days as "90d" and anything else as time.Duration does.
func (a Age) String() string {
	d := time.Duration(a)
	if d != 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// Set implements flag.Value.
func (a *Age) Set(s string) error {
	v, err := ParseAge(s)
	if err != nil {
		return err
	}
	*a = v
	return nil
}
