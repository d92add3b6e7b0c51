// Package liveview serves one page on a loopback address that shows what the
// runtime is doing: the latest frame with its overlay, one thumbnail per exit
// with its frozen pixels shown, the halt reason, charts of power,
// temperature and energy per frame over the last minutes, and controls for
// the limits. The page's assets are embedded; it loads nothing from outside.
// Limit changes go through the same command path as MQTT (Commands: the
// runtime hands in telemetry.Publisher.Command), so they are validated,
// logged, acknowledged on cmd-ack and reported on config/reported.
//
// Only the page itself may change anything: every request must name the
// server's own loopback address in Host (no DNS rebinding), and a command
// must be JSON (Content-Type: application/json) with no foreign Origin or
// cross-site Sec-Fetch-Site. Every request has read, header and write
// timeouts (internal/httpserve), so a slow body cannot hold a connection.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package liveview
