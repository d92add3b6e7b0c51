package bundle

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every error about a bundle that breaks the format.
var ErrInvalid = errors.New("invalid bundle")

// FieldError names the file and field of a bundle that broke a rule and what
// was expected.
type FieldError struct {
	File  string // path of the offending file
	Field string // JSON path inside it, e.g. stages[1].inputs.mask; empty for the whole file
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Field, e.Msg)
}

// Unwrap makes every FieldError match ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }
