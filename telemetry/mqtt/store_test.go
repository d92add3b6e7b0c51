package mqtt

import (
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// TestStoreKeepsItsOwnPublish: what paho's resume changes on a stored
// PUBLISH (the DUP flag) does not reach the packet that was put, which may
// still be on its way to the wire.
func TestStoreKeepsItsOwnPublish(t *testing.T) {
	s := newCopyingStore()
	s.Open()
	defer s.Close()
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.Qos, p.TopicName, p.MessageID, p.Payload = 1, "anytime/v1/lab/drone-7/result", 7, []byte(`{"seq":1}`)
	s.Put("o.7", p)
	got, ok := s.Get("o.7").(*packets.PublishPacket)
	if !ok || got == p || got.TopicName != p.TopicName || got.MessageID != 7 || string(got.Payload) != `{"seq":1}` || got.Qos != 1 {
		t.Fatalf("stored %+v, want a copy of %+v", got, p)
	}
	got.Dup = true
	if p.Dup {
		t.Error("setting DUP on the stored packet changed the one that was put")
	}
	sub := packets.NewControlPacket(packets.Subscribe)
	s.Put("o.8", sub)
	if s.Get("o.8") != sub {
		t.Error("a packet other than PUBLISH is not stored as it is")
	}
}
