package certfile

import "fmt"

// Error is a problem with the content of a certificate file. Its text
// never contains key material.
type Error struct{ msg string }

func (e *Error) Error() string { return "invalid certificate file: " + e.msg }

func bundleErrorf(format string, args ...any) error {
	return &Error{msg: fmt.Sprintf(format, args...)}
}
