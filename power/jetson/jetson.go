package jetson

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/anytime-edge/edge/power"
)

// ErrNoRails is returned by New when no INA3221 rail can be read: this is
// not a Jetson, or its power monitor is not exposed.
var ErrNoRails = errors.New("no readable INA3221 rail")

// Physical bounds of an INA3221 channel: its bus input is at most 26 V and a
// Jetson module draws at most tens of amps. A reading outside them is a
// sensor or driver fault and is dropped as missing.
const (
	maxRailMV = 26000
	maxRailMA = 50000
)

// Total-power rails, in order of preference: the module's input.
var totalRails = []string{"VDD_IN", "POM_5V_IN"}

// GPU load files seen across JetPack releases (per mille).
var loadGlobs = []string{
	"sys/devices/platform/bus@0/*.gpu/load",
	"sys/devices/platform/*.gpu/load",
	"sys/devices/platform/*.ga10b/load",
	"sys/devices/platform/gpu.0/load",
	"sys/devices/gpu.0/load",
}

var labelName = regexp.MustCompile(`^in([0-9]+)_label$`)

type rail struct {
	name string
	dir  string // the hwmon directory
	ch   string // channel number
}

type zone struct {
	name string
	dir  string
}

// Sampler reads a Jetson's rails, zones, GPU load and power mode through
// an fs.FS. Discovery happens once, in New; Sample re-reads the values.
// Use from one goroutine at a time.
type Sampler struct {
	fsys    fs.FS
	rails   []rail
	zones   []zone
	load    string
	board   string
	now     func() time.Time
	missing []power.Missing // discovery problems, repeated in every reading
}

// New discovers the sensors under fsys (rooted at the device's "/") and
// reads them once; it fails with ErrNoRails when no rail reads.
func New(fsys fs.FS) (*Sampler, error) {
	s := &Sampler{fsys: fsys, now: time.Now}
	s.discover()
	r, _ := s.Sample(context.Background())
	for _, rl := range r.Rails {
		if rl.Source != "" {
			return s, nil
		}
	}
	why := make([]string, 0, len(r.Missing))
	for _, m := range r.Missing {
		if strings.HasPrefix(m.Field, "rail") {
			why = append(why, m.Field+": "+m.Reason)
		}
	}
	if len(why) == 0 {
		why = append(why, "no ina3221 hwmon directory under sys/bus/i2c/drivers")
	}
	return nil, fmt.Errorf("jetson: %w (%s)", ErrNoRails, strings.Join(why, "; "))
}

// Board is the device-tree model, when readable.
func (s *Sampler) Board() string { return s.board }

// Rails returns the discovered rail names in order.
func (s *Sampler) Rails() []string {
	out := make([]string, len(s.rails))
	for i, r := range s.rails {
		out[i] = r.name
	}
	return out
}

func (s *Sampler) miss(field, reason string) {
	s.missing = append(s.missing, power.Missing{Field: field, Reason: reason})
}

func (s *Sampler) discover() {
	if b, err := fs.ReadFile(s.fsys, "proc/device-tree/model"); err == nil {
		s.board = strings.TrimSpace(strings.TrimRight(string(b), "\x00"))
	}
	dirs, _ := fs.Glob(s.fsys, "sys/bus/i2c/drivers/ina3221*/*/hwmon/hwmon*")
	slices.Sort(dirs)
	for _, dir := range dirs {
		labels, _ := fs.Glob(s.fsys, path.Join(dir, "in*_label"))
		slices.SortFunc(labels, func(a, b string) int { return chanOf(a) - chanOf(b) })
		for _, lf := range labels {
			m := labelName.FindStringSubmatch(path.Base(lf))
			if m == nil {
				continue
			}
			b, err := fs.ReadFile(s.fsys, lf)
			if err != nil {
				s.miss("rail "+lf, "unreadable label: "+errText(err))
				continue
			}
			name, err := ParseLabel(b)
			if err != nil {
				s.miss("rail "+lf, err.Error())
				continue
			}
			if name == "NC" || m[1] == "7" { // unconnected; sum of shunts
				continue
			}
			s.rails = append(s.rails, rail{name: name, dir: dir, ch: m[1]})
		}
	}
	zdirs, _ := fs.Glob(s.fsys, "sys/class/thermal/thermal_zone*")
	slices.SortFunc(zdirs, func(a, b string) int { return zoneNum(a) - zoneNum(b) })
	for _, dir := range zdirs {
		name := path.Base(dir)
		if b, err := fs.ReadFile(s.fsys, path.Join(dir, "type")); err != nil {
			s.miss("temp "+name, "unreadable type, using the directory name: "+errText(err))
		} else if t, err := ParseLabel(b); err != nil {
			s.miss("temp "+name, "type: "+err.Error()+", using the directory name")
		} else {
			name = t
		}
		s.zones = append(s.zones, zone{name: name, dir: dir})
	}
	for _, g := range loadGlobs {
		if m, _ := fs.Glob(s.fsys, g); len(m) > 0 {
			s.load = m[0]
			break
		}
	}
}

func chanOf(p string) int {
	m := labelName.FindStringSubmatch(path.Base(p))
	if m == nil {
		return 1 << 30
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func zoneNum(p string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(path.Base(p), "thermal_zone"))
	if err != nil {
		return 1 << 30
	}
	return n
}

func (s *Sampler) readInt(p string) (int64, error) {
	b, err := fs.ReadFile(s.fsys, p)
	if err != nil {
		return 0, errors.New(errText(err))
	}
	v, err := ParseInt(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path.Base(p), err)
	}
	return v, nil
}

// Sample reads every discovered value; a failed one is absent with the
// reason.
func (s *Sampler) Sample(ctx context.Context) (power.Reading, error) {
	if err := ctx.Err(); err != nil {
		return power.Reading{}, err
	}
	src := power.SourceJetson
	r := power.Reading{Time: s.now(), Source: src, Device: s.board}
	r.Missing = append(r.Missing, s.missing...)

	sum, summed, total := 0.0, 0, power.Value{}
	for _, rl := range s.rails {
		mv, err := s.readInt(path.Join(rl.dir, "in"+rl.ch+"_input"))
		if err != nil {
			r.Miss("rail "+rl.name, err.Error())
			continue
		}
		ma, err := s.readInt(path.Join(rl.dir, "curr"+rl.ch+"_input"))
		if err != nil {
			r.Miss("rail "+rl.name, err.Error())
			continue
		}
		if mv < 0 || ma < 0 || mv > maxRailMV || ma > maxRailMA {
			r.Miss("rail "+rl.name, fmt.Sprintf("%d mV, %d mA outside 0..%d mV, 0..%d mA (a sensor fault)", mv, ma, maxRailMV, maxRailMA))
			continue
		}
		w := float64(mv) * float64(ma) / 1e6
		r.Rails = append(r.Rails, power.Rail{Name: rl.name, Watts: w, Volts: float64(mv) / 1000, Amps: float64(ma) / 1000, Source: src})
		if slices.Contains(totalRails, rl.name) && !total.OK() {
			total, r.TotalFrom = power.Measured(w, src), rl.name
		}
		sum += w
		summed++
	}
	switch {
	case total.OK():
		r.TotalW = total
	case summed > 0:
		r.TotalW, r.TotalFrom = power.Measured(sum, src), "sum of rails"
		if summed < len(s.rails) {
			r.TotalFrom = fmt.Sprintf("sum of %d of %d rails", summed, len(s.rails))
		}
	default:
		r.Miss("total_w", "no rail read")
	}

	for _, z := range s.zones {
		mc, err := s.readInt(path.Join(z.dir, "temp"))
		switch {
		case err != nil:
			r.Miss("temp "+z.name, err.Error())
		case mc <= -256000:
			r.Miss("temp "+z.name, "sensor offline (reads -256 °C)")
		case mc == 0:
			r.Miss("temp "+z.name, "reads 0 °C (a BPMP read failure)")
		case mc < power.MinTempC*1000 || mc > power.MaxTempC*1000:
			r.Miss("temp "+z.name, fmt.Sprintf("%g °C outside %g..%g °C (a sensor fault)", float64(mc)/1000, power.MinTempC, power.MaxTempC))
		default:
			r.Temps = append(r.Temps, power.Temp{Zone: z.name, C: float64(mc) / 1000, Source: power.SourceSysfs})
		}
	}
	if len(s.zones) == 0 {
		r.Miss("temps", "no thermal zones under sys/class/thermal")
	}

	if s.load != "" {
		if pm, err := s.readInt(s.load); err != nil {
			r.Miss("gpu_load", err.Error())
		} else if pm < 0 || pm > 1000 {
			r.Miss("gpu_load", fmt.Sprintf("%d per mille out of range", pm))
		} else {
			r.GPULoad = power.Measured(float64(pm)/10, power.SourceSysfs)
		}
	} else {
		r.Miss("gpu_load", "no GPU load file")
	}

	r.Mode = s.mode(&r)
	r.Miss("throttle", "not exposed by Jetson sysfs")
	r.DropImplausible()
	return r, nil
}

// mode names the nvpmodel power mode: "NAME (id N)", or "id N" when the
// configuration does not name it.
func (s *Sampler) mode(r *power.Reading) string {
	b, err := fs.ReadFile(s.fsys, "var/lib/nvpmodel/status")
	if err != nil {
		r.Miss("mode", errText(err))
		return ""
	}
	id, err := ParseNVPModelStatus(b)
	if err != nil {
		r.Miss("mode", "var/lib/nvpmodel/status: "+err.Error())
		return ""
	}
	if conf, err := fs.ReadFile(s.fsys, "etc/nvpmodel.conf"); err == nil {
		if name, ok := ParseNVPModelConf(conf)[id]; ok {
			return fmt.Sprintf("%s (id %d)", name, id)
		}
	}
	return fmt.Sprintf("id %d", id)
}

// Close implements power.Sampler; it holds nothing open.
func (s *Sampler) Close() error { return nil }

// errText is an fs error without the Go wrapping noise: "open <path>: no
// such file or directory" keeps the path, which is what a reader needs.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Path + ": " + pe.Err.Error()
	}
	return err.Error()
}
