package sink

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/anytime-edge/edge/telemetry"
	"github.com/anytime-edge/edge/telemetry/broker"
)

// Fleet is the fleet link and what it needs running: the embedded broker
// (when the configuration names no broker URL), the Publisher, and the
// metrics server (when configured). Open it with OpenFleet and stop it
// with Close.
type Fleet struct {
	// Pub is the publisher: results, telemetry, events, commands.
	Pub     *telemetry.Publisher
	broker  *broker.Broker
	metrics *MetricsServer
	log     *slog.Logger
}

// OpenFleet starts the embedded broker when cfg names no broker URL, the
// Publisher (ctrl receives commands; nil rejects them) and, with
// cfg.MetricsAddr, the metrics server. It logs where each listens.
func OpenFleet(ctx context.Context, cfg telemetry.Config, ctrl telemetry.Controller, log *slog.Logger) (*Fleet, error) {
	f := &Fleet{log: log}
	var err error
	if f.broker, cfg, err = telemetry.StartBroker(cfg, log.With("component", "broker")); err != nil {
		return nil, err
	}
	if f.Pub, err = telemetry.New(ctx, cfg, ctrl, log); err != nil {
		f.Close()
		return nil, err
	}
	if f.broker != nil {
		host, port, _ := net.SplitHostPort(f.broker.Addr())
		log.Info("embedded broker", "addr", f.broker.Addr(), "watch", fmt.Sprintf("mosquitto_sub -h %s -p %s -t '%s#' -v", host, port, f.Pub.Topics().Base()))
	}
	if cfg.MetricsAddr != "" {
		if f.metrics, err = ServeMetrics(cfg.MetricsAddr, f.Pub.Metrics(), log.With("component", "metrics")); err != nil {
			f.Close()
			return nil, err
		}
		log.Info("metrics", "url", "http://"+f.metrics.Addr()+"/metrics")
	}
	return f, nil
}

// Close publishes the offline status, flushes the spool (for at most 10
// s), and stops the metrics server and the embedded broker.
func (f *Fleet) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if f.Pub != nil {
		if err := f.Pub.Close(ctx); err != nil {
			f.log.Warn("telemetry close", "err", err)
		}
	}
	if f.metrics != nil {
		if err := f.metrics.Close(ctx); err != nil {
			f.log.Warn("metrics close", "err", err)
		}
	}
	if f.broker != nil {
		if err := f.broker.Close(); err != nil {
			f.log.Warn("broker close", "err", err)
		}
	}
}
