package native

import "errors"

// ErrUnavailable is returned by Load in a build without cgo.
var ErrUnavailable = errors.New("native stages need a build with cgo")

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("native stage closed")
