package grpctransport

import "testing"

func TestDialTarget(t *testing.T) {
	for in, want := range map[string]string{
		":9001": "127.0.0.1:9001", "0.0.0.0:9001": "127.0.0.1:9001", "[::]:9001": "127.0.0.1:9001",
		"127.0.0.1:9001": "127.0.0.1:9001", "billing:9001": "billing:9001", "[::1]:9001": "[::1]:9001", "billing": "billing",
	} {
		if got := DialTarget(in); got != want {
			t.Errorf("DialTarget(%q) = %q, want %q", in, got, want)
		}
	}
}
