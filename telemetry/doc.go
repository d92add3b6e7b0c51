// Package telemetry publishes the runtime's results, health and events to a
// fleet over MQTT and applies the fleet's commands, following
// shared/design/MQTT.md.
//
// A Publisher owns the whole path: messages get their envelope (device,
// boot id, seq, capture time) and are appended to a durable disk spool
// (package telemetry/spool) by a writer goroutine; a sender goroutine
// publishes spooled records over a paho connection (package telemetry/mqtt)
// and deletes a record only after its PUBACK arrived on the connection it
// was sent on. Publish never blocks on the disk or the network, so the frame
// loop can call it directly.
//
// Commands arriving on cmd/{name} are parsed and validated (ParseCommand),
// de-duplicated by cmd_id, applied through the Controller the runtime
// implements, acknowledged on cmd-ack, and followed by a retained
// config/reported message.
//
// When no broker URL is configured, the Publisher starts an embedded broker
// (package telemetry/broker) on 127.0.0.1:1883. Prometheus metrics are
// served on a loopback address when one is configured.
//
// JSON Schemas for every message are in schemas/; README.md shows examples.
package telemetry
