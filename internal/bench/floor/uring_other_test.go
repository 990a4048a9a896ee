//go:build !linux

package floor

import "errors"

// ring is io_uring's, which only Linux has (uring_linux_test.go).
type ring struct{}

func newRing(uint32) (*ring, error)         { return nil, errors.ErrUnsupported }
func (*ring) close()                        {}
func (*ring) sendAll([]int32, []byte) error { return errors.ErrUnsupported }
