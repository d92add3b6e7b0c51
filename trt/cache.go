package trt

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// CacheEntry is one file of a TensorRT engine cache directory.
type CacheEntry struct {
	Path    string
	Size    int64
	ModTime time.Time
	// Prefix is the engine's cache prefix (StageKey.CachePrefix) when the
	// file name starts with one of ours; empty for timing caches and files
	// of other programs.
	Prefix string
	// Kind is "engine", "profile", "timing" or "other".
	Kind string
}

// ListCache lists the engine and timing cache files under dir (as laid out
// by Options.TensorRTOptions: dir/engines and dir/timing).
func ListCache(dir string) ([]CacheEntry, error) {
	var out []CacheEntry
	for _, sub := range []string{"engines", "timing"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list engine cache: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue
			}
			out = append(out, classify(filepath.Join(dir, sub, e.Name()), info))
		}
	}
	slices.SortFunc(out, func(a, b CacheEntry) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

func classify(path string, info os.FileInfo) CacheEntry {
	name := filepath.Base(path)
	e := CacheEntry{Path: path, Size: info.Size(), ModTime: info.ModTime(), Kind: "other"}
	switch {
	case strings.HasSuffix(name, ".engine"):
		e.Kind = "engine"
	case strings.HasSuffix(name, ".profile"):
		e.Kind = "profile"
	case strings.HasSuffix(name, ".timing"):
		e.Kind = "timing"
	}
	if (e.Kind == "engine" || e.Kind == "profile") && strings.HasPrefix(name, cachePrefixVersion) {
		// edge1_<stage>_<sha12>_<ORT's hash and suffixes>
		parts := strings.Split(strings.TrimPrefix(name, cachePrefixVersion), "_")
		for i := 1; i < len(parts); i++ {
			if len(parts[i]) == 12 && isHex(parts[i]) {
				e.Prefix = cachePrefixVersion + strings.Join(parts[:i+1], "_")
				break
			}
		}
	}
	return e
}

func isHex(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// Stale returns the engine and profile files of ours whose prefix is not
// one of keys (a retrained or removed bundle's stages). Timing caches and
// files of other programs are never stale: the timing cache is shared
// across models of the same GPU.
func Stale(entries []CacheEntry, keys []StageKey) []CacheEntry {
	current := map[string]bool{}
	for _, k := range keys {
		current[k.CachePrefix()] = true
	}
	var out []CacheEntry
	for _, e := range entries {
		if e.Prefix != "" && !current[e.Prefix] {
			out = append(out, e)
		}
	}
	return out
}
