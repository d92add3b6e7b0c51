// Package liveview serves one page on a loopback address that shows what the
// runtime is doing: the latest frame with its overlay, one thumbnail per exit
// with its frozen pixels shown, the halt reason, charts of power,
// temperature and energy per frame over the last minutes, and controls for
// the limits. The page's assets are embedded; it loads nothing from outside.
// Limit changes go through the same validated command path as MQTT.
package liveview
