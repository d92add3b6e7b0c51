package netaddr

import "testing"

func TestLoopback(t *testing.T) {
	tests := []struct {
		addr    string
		want    bool
		wantErr bool
	}{
		{"127.0.0.1:8080", true, false},
		{"127.8.9.10:1", true, false},
		{"[::1]:80", true, false},
		{"localhost:1883", true, false},
		{"0.0.0.0:8080", false, false},
		{":8080", false, false},
		{"10.0.0.2:80", false, false},
		{"example.com:80", false, false},
		{"127.0.0.1", false, true},
	}
	for _, tt := range tests {
		got, err := Loopback(tt.addr)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%s: got %v, %v; want %v, error %v", tt.addr, got, err, tt.want, tt.wantErr)
		}
	}
}
