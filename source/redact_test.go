package source

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"rtsp://user:pass@cam.local:554/stream", "rtsp://user:***@cam.local:554/stream"},
		{"rtsp://token@cam.local/stream", "rtsp://***@cam.local/stream"},
		{"rtsp://u:p%40ss@h/s", "rtsp://u:***@h/s"},
		// Ambiguous: too much hidden, never too little.
		{"rtsp://u:p@ss/w@rd@h/s", "rtsp://***"},
		{"rtsp://u:p?ss#w@h/s", "rtsp://***"},
		{"https://h/live?email=a@b.example&token=t0k", "https://***"},
		{"rtsp://h/stream@main", "rtsp://***"},
		{"https://h/live.m3u8?user=a&password=b&Token=c#x", "https://h/live.m3u8?user=a&password=***&Token=***#x"},
		{"rtsp://cam.local/stream", "rtsp://cam.local/stream"},
		{"/data/clip.mp4", "/data/clip.mp4"},
		{"v4l2:///dev/video0", "v4l2:///dev/video0"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	_, secrets := redact("rtsp://u:p%40ss@h/s")
	if got := scrub("h: p@ss and p%40ss", secrets); got != "h: *** and ***" {
		t.Errorf("scrub: got %q", got)
	}
}

// FuzzRedact: whatever the password, Redact never shows it.
func FuzzRedact(f *testing.F) {
	f.Add("operator", "hunter2", "10.0.0.7:8554/cam?token=x")
	f.Add("u", "p@ss/w?r#d", "h/s")
	f.Add("", "pass", "h/a@b")
	f.Fuzz(func(t *testing.T, user, pass, hostpath string) {
		if strings.ContainsAny(user, ":@/?#") || len(pass) < 3 {
			return
		}
		uri := "rtsp://" + user + ":" + pass + "@" + hostpath
		out := Redact(uri)
		if strings.Contains(out, pass) && !strings.Contains("rtsp://"+user+":***@"+hostpath, pass) {
			t.Fatalf("Redact(%q) = %q shows the password %q", uri, out, pass)
		}
	})
}
