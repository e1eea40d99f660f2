//go:build !cgo || !(linux || darwin)

// Package jpegturbo decodes JPEG with libjpeg-turbo when cgo is available; this build has
// no cgo, so it reports the library as unavailable and callers use Go's decoder.
package jpegturbo

import "errors"

var errUnavailable = errors.New("libjpeg-turbo needs cgo")

// Available reports whether libturbojpeg could be loaded: never without cgo.
func Available() bool { return false }

// Size is unavailable without cgo.
func Size([]byte) (int, int, error) { return 0, 0, errUnavailable }

// Decode is unavailable without cgo.
func Decode([]byte, int) ([]byte, int, int, error) { return nil, 0, 0, errUnavailable }

// DecodeInto is unavailable without cgo.
func DecodeInto(func(int) []byte, []byte, int) ([]byte, int, int, error) {
	return nil, 0, 0, errUnavailable
}
