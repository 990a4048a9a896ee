//go:build unix && !aix && !solaris

package sqlite

import (
	"errors"
	"os"
	"syscall"
)

// errLocked means another open file description holds the lock.
var errLocked = errors.New("locked")

// lockFile takes an exclusive advisory lock on the file at path, creating
// it if needed, without waiting. The lock belongs to this open file, so a
// second lockFile of the same path fails even in the same process. The
// file stays on disk after unlock: removing it could let two processes lock
// two different files of the same name.
func lockFile(path string) (unlock func() error, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, err
	}
	return f.Close, nil // closing the file releases the lock
}
