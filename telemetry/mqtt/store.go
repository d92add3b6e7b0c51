package mqtt

import (
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// copyingStore is paho's ordered in-memory session store, except that it
// keeps its own copy of every PUBLISH put in it.
//
// When a connection comes up paho first reports it (our sender may then
// publish at once) and only then resumes the session: it walks the store
// and sets the DUP flag on each stored PUBLISH. A message published in that
// window is in the store and, the same packet, being written by paho's
// outgoing goroutine: a data race on the packet's header (paho.mqtt.golang
// issue 703, open in v1.5.1), which go test -race reports. With a copy in
// the store, resume marks the copy and the packet on the wire is left alone.
type copyingStore struct {
	*paho.OrderedMemoryStore
}

func newCopyingStore() copyingStore {
	return copyingStore{paho.NewOrderedMemoryStore()}
}

// Put stores m, or a copy of it when it is a PUBLISH.
func (s copyingStore) Put(key string, m packets.ControlPacket) {
	if p, ok := m.(*packets.PublishPacket); ok {
		cp := *p
		m = &cp
	}
	s.OrderedMemoryStore.Put(key, m)
}
