package telemetry

import (
	"log/slog"

	"github.com/anytime-edge/edge/telemetry/broker"
)

// StartBroker starts the embedded broker that cfg asks for (no BrokerURL:
// listen on BrokerListen; when Username and Password are set, require
// credentials from every client — the device's or one of BrokerUsers — and
// confine each to its role, see broker.Device) and returns it with a copy of cfg pointed at it, ready
// for New. The caller owns the broker and closes it after the Publisher.
// With a BrokerURL it starts nothing and returns (nil, cfg, nil).
func StartBroker(cfg Config, log *slog.Logger) (*broker.Broker, Config, error) {
	if cfg.BrokerURL != "" {
		return nil, cfg, nil
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, cfg, err
	}
	var users map[string]string
	var device *broker.Device
	if cfg.Username != "" {
		users = map[string]string{cfg.Username: cfg.Password}
		for u, pw := range cfg.BrokerUsers {
			users[u] = pw
		}
		device = &broker.Device{User: cfg.Username, ClientID: cfg.Device, Base: NewTopics(cfg.Root, cfg.Site, cfg.Device).Base()}
	}
	b, err := broker.Start(broker.Config{Listen: cfg.BrokerListen, Users: users, Device: device, Log: log})
	if err != nil {
		return nil, cfg, err
	}
	cfg.BrokerURL, cfg.BrokerListen, cfg.BrokerUsers = b.URL(), "", nil
	return b, cfg, nil
}
