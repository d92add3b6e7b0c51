package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/power"
)

// validate checks v (decoded with UseNumber-free encoding/json) against the
// subset of JSON Schema the files in schemas/ use: type, const, enum,
// required, properties, additionalProperties, items, minimum, maximum,
// exclusiveMinimum, pattern, maxLength, format date-time. Unknown keywords
// fail, so the subset cannot silently grow.
func validate(schema map[string]any, v any, path string) []string {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, path+": "+fmt.Sprintf(f, a...)) }
	known := map[string]bool{"$schema": true, "$id": true, "title": true, "description": true, "type": true, "const": true,
		"enum": true, "required": true, "properties": true, "additionalProperties": true, "items": true, "minimum": true,
		"maximum": true, "exclusiveMinimum": true, "pattern": true, "maxLength": true, "format": true}
	for k := range schema {
		if !known[k] {
			bad("schema uses unsupported keyword %q", k)
		}
	}
	if t, ok := schema["type"]; ok {
		var types []string
		switch t := t.(type) {
		case string:
			types = []string{t}
		case []any:
			for _, x := range t {
				types = append(types, x.(string))
			}
		}
		match := false
		for _, tt := range types {
			if typeOf(v, tt) {
				match = true
			}
		}
		if !match {
			bad("type %s, want %v", jsonType(v), types)
			return errs
		}
	}
	if c, ok := schema["const"]; ok && fmt.Sprint(c) != fmt.Sprint(v) {
		bad("= %v, want %v", v, c)
	}
	if e, ok := schema["enum"]; ok {
		found := false
		for _, x := range e.([]any) {
			if fmt.Sprint(x) == fmt.Sprint(v) {
				found = true
			}
		}
		if !found {
			bad("= %v, not in %v", v, e)
		}
	}
	if n, ok := v.(float64); ok {
		if m, ok := schema["minimum"].(float64); ok && n < m {
			bad("= %v, below minimum %v", n, m)
		}
		if m, ok := schema["maximum"].(float64); ok && n > m {
			bad("= %v, above maximum %v", n, m)
		}
		if m, ok := schema["exclusiveMinimum"].(float64); ok && n <= m {
			bad("= %v, not above %v", n, m)
		}
	}
	if s, ok := v.(string); ok {
		if p, ok := schema["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(s) {
			bad("%q does not match %s", s, p)
		}
		if m, ok := schema["maxLength"].(float64); ok && float64(len([]rune(s))) > m {
			bad("longer than %v", m)
		}
		if f, ok := schema["format"].(string); ok && f == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				bad("%q is not an RFC 3339 date-time", s)
			}
		}
	}
	if obj, ok := v.(map[string]any); ok {
		props, _ := schema["properties"].(map[string]any)
		if req, ok := schema["required"].([]any); ok {
			for _, r := range req {
				if _, ok := obj[r.(string)]; !ok {
					bad("missing required %q", r)
				}
			}
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if ps, ok := props[k]; ok {
				errs = append(errs, validate(ps.(map[string]any), obj[k], path+"."+k)...)
				continue
			}
			switch ap := schema["additionalProperties"].(type) {
			case bool:
				if !ap {
					bad("unexpected property %q", k)
				}
			case map[string]any:
				errs = append(errs, validate(ap, obj[k], path+"."+k)...)
			}
		}
	}
	if arr, ok := v.([]any); ok {
		if it, ok := schema["items"].(map[string]any); ok {
			for i, x := range arr {
				errs = append(errs, validate(it, x, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	}
	return errs
}

func typeOf(v any, t string) bool {
	switch t {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		n, ok := v.(float64)
		return ok && n == math.Trunc(n)
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "null":
		return v == nil
	}
	return false
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	}
	return fmt.Sprintf("%T", v)
}

func loadSchema(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("schemas", name+".schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s.schema.json: %v", name, err)
	}
	return s
}

func checkAgainst(t *testing.T, schema string, payload []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(payload, &v); err != nil {
		t.Fatalf("%s: bad JSON: %v", schema, err)
	}
	if errs := validate(loadSchema(t, schema), v, schema); len(errs) > 0 {
		t.Fatalf("%s does not match its schema:\n%s\npayload: %s", schema, strings.Join(errs, "\n"), payload)
	}
}

// schemaFor maps a topic below the device root to its schema.
func schemaFor(suffix string) string {
	switch {
	case strings.HasPrefix(suffix, "event/"):
		return "event"
	case suffix == "config/reported":
		return "config-reported"
	}
	return suffix
}

// TestExamplesMatchSchemas checks every example (also shown in README.md).
func TestExamplesMatchSchemas(t *testing.T) {
	files, _ := filepath.Glob("schemas/examples/*.json")
	if len(files) < 8 {
		t.Fatalf("found %d examples", len(files))
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			schema := name
			for _, s := range []string{"-replay", "-lwt", "-rejected"} {
				schema = strings.TrimSuffix(schema, s)
			}
			checkAgainst(t, schema, b)
			if !strings.Contains(string(readme), strings.TrimSpace(string(b))) {
				t.Errorf("README.md does not show the example %s verbatim", f)
			}
		})
	}
}

// TestPublishedMessagesMatchSchemas publishes one of each message and
// checks what reached the broker.
func TestPublishedMessagesMatchSchemas(t *testing.T) {
	log, _ := testLogger()
	b, col, _, p := commandRig(t, log)
	ctx := context.Background()
	pose := sampleResult(2)
	pose.Classes = nil
	pose.Keypoints = []Keypoint{{Instance: 0, Name: "nose", X: 100.5, Y: 80, Score: 0.93}}
	pose.Halt.Reason = anytime.ReasonAllConfident
	for _, m := range []Message{
		sampleResult(1), pose,
		&Telemetry{PowerW: 14, PowerSource: power.SourceJetson, TempsC: map[string]float64{"gpu": 61}, TempSource: power.SourceJetson, FPS: 30},
		&Event{Kind: "bundle-loaded", Message: "loaded", Data: map[string]string{"name": "x"}},
	} {
		if err := p.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	if err := b.Publish(p.Topics().Topic("cmd/set-deadline"), cmdJSON(CmdSetDeadline, "s1", now, now.Add(time.Minute), `{"ms":30}`), false); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(p.Topics().Topic("cmd/set-threshold"), cmdJSON(CmdSetThreshold, "s2", now, now.Add(time.Minute), `{"threshold":3}`), false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "acks", func() bool { return len(col.results(t, "/cmd-ack")) == 2 })
	closePublisher(t, p)
	seen := map[string]int{}
	for _, m := range col.snapshot() {
		suffix := strings.TrimPrefix(m.topic, p.Topics().Base())
		schema := schemaFor(suffix)
		switch suffix {
		case "cmd/set-deadline":
			schema = "cmd"
		case "cmd/set-threshold":
			continue // deliberately out of range
		}
		seen[schema]++
		checkAgainst(t, schema, m.payload)
	}
	for _, s := range []string{"result", "telemetry", "event", "status", "cmd-ack", "config-reported", "cmd"} {
		if seen[s] == 0 {
			t.Errorf("no %s message was published", s)
		}
	}
	// markReplay keeps results valid.
	res := sampleResult(3)
	res.Envelope = Envelope{V: 1, Device: "drone-7", Boot: p.Boot(), Seq: 9, TS: time.Now()}
	r, _ := json.Marshal(res)
	checkAgainst(t, "result", markReplay(r))
	// So does a progressive (intermediate exit) result.
	res.Progressive = true
	res.Halt = Halt{Exit: 1, Reason: HaltInProgress}
	r, _ = json.Marshal(res)
	checkAgainst(t, "result", r)
}

// TestSchemasRejectBadMessages makes sure the validator and schemas catch
// real mistakes.
func TestSchemasRejectBadMessages(t *testing.T) {
	good, err := os.ReadFile("schemas/examples/result.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, from, to, want string
	}{
		{"unknown reason", `"reason":"deadline"`, `"reason":"tired"`, "not in"},
		{"missing halt", `"halt":{"exit":2,"reason":"deadline","deadline_ms":25},`, ``, `missing required "halt"`},
		{"extra field", `"keypoints":null`, `"keypoints":null,"note":"x"`, `unexpected property "note"`},
		{"bad device", `"device":"drone-7"`, `"device":"Drone 7"`, "does not match"},
		{"fractional exit", `"exit":2,"reason"`, `"exit":2.5,"reason"`, "want [integer]"},
		{"bad time", `"ts":"2026-11-27T03:12:45.123456789Z"`, `"ts":"yesterday"`, "RFC 3339"},
		{"frozen above one", `"frozen":0.61`, `"frozen":1.61`, "above maximum"},
		{"replay false", `"keypoints":null`, `"keypoints":null,"replay":false`, "want true"},
		{"progressive false", `"keypoints":null`, `"keypoints":null,"progressive":false`, "want true"},
	}
	schema := loadSchema(t, "result")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := strings.Replace(string(good), tc.from, tc.to, 1)
			if s == string(good) {
				t.Fatalf("mutation %q not applied", tc.from)
			}
			var v any
			if err := json.Unmarshal([]byte(s), &v); err != nil {
				t.Fatal(err)
			}
			errs := validate(schema, v, "result")
			if !strings.Contains(strings.Join(errs, "\n"), tc.want) {
				t.Fatalf("errors %v, want one containing %q", errs, tc.want)
			}
		})
	}
}
