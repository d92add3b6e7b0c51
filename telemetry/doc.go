// Package telemetry publishes the runtime's results, health and events to a
// fleet over MQTT and applies the fleet's commands, following the contract
// in README.md (topics, messages, commands).
//
// A Publisher owns the message path: messages get their envelope (device,
// boot id, seq, capture time) and are appended to a durable disk spool
// (package telemetry/spool) by a writer goroutine; the sender (sender.go)
// publishes spooled records over a paho connection (package telemetry/mqtt)
// and deletes a record only after its PUBACK arrived on the connection it
// was sent on. Publish never blocks on the disk or the network, so the frame
// loop can call it directly.
//
// Every command takes one path (command_path.go), whether it arrived on
// cmd/{name} or from the live view through Publisher.Command: parsed and
// validated (ParseCommand), de-duplicated by cmd_id, applied through the
// Controller the runtime implements, logged, acknowledged on cmd-ack, and
// followed by a retained config/reported message.
//
// The Publisher starts no server: its owner starts the embedded broker
// (StartBroker, package telemetry/broker) when no broker URL is configured,
// and serves Publisher.Metrics where metrics are wanted.
//
// JSON Schemas for every message are in schemas/; README.md shows examples.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package telemetry
