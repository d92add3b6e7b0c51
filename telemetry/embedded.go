package telemetry

import (
	"log/slog"

	"github.com/anytime-edge/edge/telemetry/broker"
)

// StartBroker starts the embedded broker that cfg asks for (no BrokerURL:
// listen on BrokerListen, requiring Username and Password from every client
// when they are set) and returns it with a copy of cfg pointed at it, ready
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
	if cfg.Username != "" {
		users = map[string]string{cfg.Username: cfg.Password}
	}
	b, err := broker.Start(broker.Config{Listen: cfg.BrokerListen, Users: users, Log: log})
	if err != nil {
		return nil, cfg, err
	}
	cfg.BrokerURL, cfg.BrokerListen = b.URL(), ""
	return b, cfg, nil
}
