// Package mqtt wraps paho.mqtt.golang v1.5.1 (MQTT 3.1.1) behind the small
// surface the telemetry publisher needs: connect in the background with
// retries, publish returning a token, subscriptions restored on every
// connection, and a connection epoch so that a caller can tell whether a
// PUBACK arrived on the same connection its message was sent on.
//
// paho completes the tokens of stored messages early when it resumes a
// session, before any PUBACK; the epoch is
// bumped before that can happen, so such completions are recognisable.
//
// This is the only package that imports paho.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package mqtt
