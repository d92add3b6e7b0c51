package jetson

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/anytime-edge/edge/power"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func open(t *testing.T, board string) *Sampler {
	t.Helper()
	s, err := New(os.DirFS(filepath.Join("testdata", board)))
	if err != nil {
		t.Fatalf("New(%s): %v", board, err)
	}
	s.now = func() time.Time { return epoch }
	return s
}

func TestBoards(t *testing.T) {
	tests := []struct {
		board     string
		rails     []string
		totalW    float64
		totalFrom string
		temps     int
		hottest   string
		load      float64
		mode      string
		missing   []string // fields that must be absent
	}{
		{
			board: "orin-nano", rails: []string{"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"},
			totalW: 5.048 * 0.981, totalFrom: "VDD_IN", temps: 6, hottest: "cpu-thermal",
			load: 34.5, mode: "MAXN_SUPER (id 2)", missing: []string{"throttle"},
		},
		{
			board: "orin-nx", rails: []string{"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"},
			totalW: 5.024 * 0.856, totalFrom: "VDD_IN", temps: 9, hottest: "cpu-thermal",
			load: 0, mode: "15W (id 2)", missing: []string{"throttle"},
		},
		{
			board: "agx-orin", rails: []string{"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"},
			totalW: 19.936*0.160 + 19.936*0.040 + 4.984*0.395 + 4.992*0.064, totalFrom: "sum of rails",
			temps: 5, hottest: "cpu-thermal", load: 100, mode: "MAXN (id 0)",
			missing: []string{"temp gpu-thermal", "temp cv0-thermal", "temp cv1-thermal", "temp cv2-thermal", "throttle"},
		},
		{
			board: "broken", rails: []string{"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"},
			totalW: 1.5, totalFrom: "sum of 1 of 3 rails", temps: 2, hottest: "tj-thermal",
			missing: []string{
				"rail VDD_IN", "rail VDD_CPU_GPU_CV", "temp cpu-thermal", "temp gpu-thermal",
				"temp soc0-thermal", "temp cv0-thermal", "gpu_load", "mode",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.board, func(t *testing.T) {
			s := open(t, tt.board)
			if got := strings.Join(s.Rails(), ","); got != strings.Join(tt.rails, ",") {
				t.Errorf("rails = %s, want %s", got, strings.Join(tt.rails, ","))
			}
			r, err := s.Sample(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !r.TotalW.OK() || r.TotalW.Source != power.SourceJetson || math.Abs(r.TotalW.V-tt.totalW) > 1e-9 {
				t.Errorf("total = %+v, want %.4f W from jetson", r.TotalW, tt.totalW)
			}
			if r.TotalFrom != tt.totalFrom {
				t.Errorf("total from %q, want %q", r.TotalFrom, tt.totalFrom)
			}
			if len(r.Temps) != tt.temps {
				t.Errorf("%d temps (%+v), want %d", len(r.Temps), r.Temps, tt.temps)
			}
			if _, zone, ok := r.HottestC(); !ok || zone != tt.hottest {
				t.Errorf("hottest zone %q, want %q", zone, tt.hottest)
			}
			if tt.load > 0 || tt.board != "broken" {
				if !r.GPULoad.OK() || r.GPULoad.V != tt.load {
					t.Errorf("gpu load = %+v, want %v%%", r.GPULoad, tt.load)
				}
			}
			if r.Mode != tt.mode {
				t.Errorf("mode %q, want %q", r.Mode, tt.mode)
			}
			have := map[string]string{}
			for _, m := range r.Missing {
				have[m.Field] = m.Reason
			}
			for _, f := range tt.missing {
				if have[f] == "" {
					t.Errorf("%q not reported missing with a reason; missing = %+v", f, r.Missing)
				}
			}
			for _, rl := range r.Rails {
				if rl.Source != power.SourceJetson || rl.Watts <= 0 {
					t.Errorf("rail %+v: want a positive reading from jetson", rl)
				}
			}
			golden(t, tt.board, r)
		})
	}
}

// golden compares the reading's JSON with testdata/<board>.golden.json.
func golden(t *testing.T, board string, r power.Reading) {
	t.Helper()
	got, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	p := filepath.Join("testdata", board+".golden.json")
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("reading differs from %s (go test -update rewrites it):\n%s", p, got)
	}
}

func TestNotAJetson(t *testing.T) {
	tests := map[string]fstest.MapFS{
		"empty root": {},
		"thermal only": {
			"sys/class/thermal/thermal_zone0/type": {Data: []byte("x86_pkg_temp\n")},
			"sys/class/thermal/thermal_zone0/temp": {Data: []byte("40000\n")},
		},
		"rails all unreadable": {
			ina3221Dir + "in1_label": {Data: []byte("VDD_IN\n")},
			ina3221Dir + "in1_input": {Data: []byte("-\n")},
		},
	}
	for name, fsys := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := New(fsys); !errors.Is(err, ErrNoRails) {
				t.Errorf("New = %v, want ErrNoRails", err)
			}
		})
	}
}

// ina3221Dir is the hwmon directory of the INA3221 in ina3221's sysfs.
const ina3221Dir = "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/"

// ina3221 is a sysfs with one INA3221 whose hwmon files hold files' values,
// each ending in a newline.
func ina3221(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for f, v := range files {
		fsys[ina3221Dir+f] = &fstest.MapFile{Data: []byte(v + "\n")}
	}
	return fsys
}

// A rail that disappears after discovery (a driver unbound) is reported
// missing on the next sample, and the others still read.
func TestRailVanishes(t *testing.T) {
	fsys := ina3221(map[string]string{
		"in1_label": "VDD_IN", "in1_input": "5000", "curr1_input": "1000",
		"in2_label": "VDD_SOC", "in2_input": "5000", "curr2_input": "200",
	})
	s, err := New(fsys)
	if err != nil {
		t.Fatal(err)
	}
	delete(fsys, ina3221Dir+"curr1_input")
	r, _ := s.Sample(context.Background())
	if len(r.Rails) != 1 || r.Rails[0].Name != "VDD_SOC" || r.TotalFrom != "sum of 1 of 2 rails" || r.TotalW.V != 1 {
		t.Errorf("after VDD_IN vanished: rails %+v, total %+v from %q", r.Rails, r.TotalW, r.TotalFrom)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Sample(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Sample with a cancelled context = %v", err)
	}
}

func TestParsers(t *testing.T) {
	ints := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"5048\n", 5048, true}, {" -256000 ", -256000, true}, {"", 0, false}, {"\n", 0, false},
		{"12abc", 0, false}, {"1.5", 0, false}, {"99999999999999999999", 0, false},
	}
	for _, tt := range ints {
		got, err := ParseInt([]byte(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseInt(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	modes := []struct {
		in   string
		want int
		ok   bool
	}{
		{"pmode:0002\n", 2, true}, {"pmode:0000", 0, true}, {"pmode:", 0, false}, {"mode two", 0, false}, {"pmode:-1", 0, false},
	}
	for _, tt := range modes {
		got, err := ParseNVPModelStatus([]byte(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseNVPModelStatus(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	labels := []struct {
		in, want string
		ok       bool
	}{
		{"VDD_IN\n", "VDD_IN", true}, {"", "", false}, {"\xff\xfe", "", false}, {"a\x00b", "", false},
		{strings.Repeat("x", 65), "", false},
	}
	for _, tt := range labels {
		got, err := ParseLabel([]byte(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseLabel(%q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	conf := "< POWER_MODEL ID=0 NAME=15W >\nCPU_ONLINE CORE_0 1\n< POWER_MODEL ID=x NAME=bad >\n< POWER_MODEL NAME=noid >\n<POWER_MODEL ID=2 NAME=MAXN_SUPER>\n"
	got := ParseNVPModelConf([]byte(conf))
	if len(got) != 2 || got[0] != "15W" || got[2] != "MAXN_SUPER" {
		t.Errorf("ParseNVPModelConf = %v, want {0:15W 2:MAXN_SUPER}", got)
	}
}

// FuzzParsers: no input makes a parser panic, and what they accept is sane.
func FuzzParsers(f *testing.F) {
	for _, s := range []string{"5048\n", "-256000", "pmode:0002\n", "VDD_IN\n", "< POWER_MODEL ID=2 NAME=MAXN >\n", "", "\xff", "pmode:99999999999999999999"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := ParseInt(b); err == nil {
			if _, err := ParseInt([]byte(" " + strings.TrimSpace(string(b)) + "\n")); err != nil {
				t.Errorf("ParseInt accepted %q as %d but not with whitespace around", b, v)
			}
		}
		if id, err := ParseNVPModelStatus(b); err == nil && id < 0 {
			t.Errorf("ParseNVPModelStatus(%q) = %d, want ≥ 0", b, id)
		}
		if l, err := ParseLabel(b); err == nil && (l == "" || len(l) > 64 || strings.TrimSpace(l) != l) {
			t.Errorf("ParseLabel(%q) = %q", b, l)
		}
		for id, name := range ParseNVPModelConf(b) {
			if id < 0 || name == "" {
				t.Errorf("ParseNVPModelConf(%q) has %d=%q", b, id, name)
			}
		}
	})
}

// TestImplausibleValuesAreMissing: a rail current near the int64 maximum
// and a zone at 2 million °C are sensor faults, absent with the reason, and
// the total falls back to the rails that read sensibly.
func TestImplausibleValuesAreMissing(t *testing.T) {
	fsys := ina3221(map[string]string{
		"in1_label": "VDD_IN", "in1_input": "5000", "curr1_input": "9223372036854775000",
		"in2_label": "VDD_SOC", "in2_input": "5000", "curr2_input": "200",
		"in3_label": "VDD_GPU", "in3_input": "5000", "curr3_input": "400",
	})
	for zone, mc := range map[string]string{"0": "2000000000", "1": "45000"} {
		fsys["sys/class/thermal/thermal_zone"+zone+"/type"] = &fstest.MapFile{Data: []byte("zone" + zone + "\n")}
		fsys["sys/class/thermal/thermal_zone"+zone+"/temp"] = &fstest.MapFile{Data: []byte(mc + "\n")}
	}
	s, err := New(fsys)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := s.Sample(context.Background())
	if len(r.Rails) != 2 || r.TotalFrom != "sum of 2 of 3 rails" || math.Abs(r.TotalW.V-3) > 1e-9 {
		t.Errorf("rails %+v, total %+v from %q; want VDD_IN dropped and 3 W from the others", r.Rails, r.TotalW, r.TotalFrom)
	}
	if c, zone, ok := r.HottestC(); !ok || c != 45 || zone != "zone1" {
		t.Errorf("hottest %v °C in %q, want 45 °C in zone1 (zone0's 2e6 °C dropped)", c, zone)
	}
	var why []string
	for _, m := range r.Missing {
		if m.Field == "rail VDD_IN" || m.Field == "temp zone0" {
			why = append(why, m.Field+": "+m.Reason)
		}
	}
	if len(why) != 2 || !strings.Contains(strings.Join(why, "; "), "sensor fault") {
		t.Errorf("missing %v, want VDD_IN and zone0 named as sensor faults", why)
	}
}
