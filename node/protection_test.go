package node

import (
	"testing"

	"github.com/dmlrun/dmlrun/config"
	"github.com/dmlrun/dmlrun/transport"
)

func TestProtection(t *testing.T) {
	for _, tc := range []struct {
		frameMAC string
		encrypt  bool
		want     transport.Protection
	}{
		{"", false, transport.ProtectAuto},
		{"auto", false, transport.ProtectAuto},
		{"on", false, transport.ProtectMAC},
		{"off", false, transport.ProtectNone},
		{"auto", true, transport.ProtectEncrypt},
		{"on", true, transport.ProtectEncrypt},
	} {
		if got := protection(config.Cluster{FrameMAC: tc.frameMAC, Encrypt: tc.encrypt}); got != tc.want {
			t.Errorf("frame_mac %q, encrypt %v: %v, want %v", tc.frameMAC, tc.encrypt, got, tc.want)
		}
	}
}
