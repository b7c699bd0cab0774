//go:build !linux

package lazyfree

// Reexec does nothing outside Linux: the setting is Linux's.
func Reexec() error { return nil }
