"""Python side of the model toolchain; the Go package `models` lives beside it."""
