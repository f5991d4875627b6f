// Package testkit holds the scaffolding that the tests of every package of
// nhncert share: splitting PEM files, checking that a key belongs to a
// certificate, an HTTP server that records what it was asked, and a
// goroutine-safe log buffer. Test code only; nothing in the plugin imports it.
package testkit
