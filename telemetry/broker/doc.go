// Package broker runs the embedded MQTT broker (mochi-mqtt/server v2) that
// the runtime starts when no broker URL is configured, so that
// `mosquitto_sub -h 127.0.0.1 -t 'anytime/#' -v` works on the device out of
// the box. It listens on loopback only, unless users with passwords are
// configured. Tests use it too, on 127.0.0.1:0.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package broker
