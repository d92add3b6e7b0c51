// Package jetson is the power backend for NVIDIA Jetson modules, where NVML
// reads nothing. It reads, through an fs.FS rooted at the device's "/" (the
// --sysfs flag; a fixture tree in tests):
//
//   - INA3221 rails, found by their labels under
//     sys/bus/i2c/drivers/ina3221*/*/hwmon/hwmon*/ (in<N>_label, in<N>_input
//     in mV, curr<N>_input in mA); unconnected "NC" channels are skipped;
//   - thermal zones, sys/class/thermal/thermal_zone*/{type,temp} in
//     millidegrees C (offline sensors read -256 °C and are left out);
//   - the GPU load, where the platform exposes it (per mille);
//   - the power mode, var/lib/nvpmodel/status (pmode:NNNN), named from
//     etc/nvpmodel.conf.
//
// Total power is VDD_IN (Orin Nano/NX: the module input) when present,
// otherwise the sum of the rails (AGX Orin has no VDD_IN). A missing,
// unreadable or garbled file makes that one value absent with the reason;
// it never stops the others. Parsing is pure functions over bytes, fuzzed.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package jetson
