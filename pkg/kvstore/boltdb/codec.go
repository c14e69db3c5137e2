package boltdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// formatV1 marks the record layout below; a later layout gets a new byte, so old files stay
// readable and foreign values are recognised instead of misread.
const formatV1 = 1

// headerSize is the fixed prefix of every stored value: format, LastIndex, expiry.
const headerSize = 1 + 8 + 8

// errCorrupt reports a stored value that is not a kvop record (written by another program, or
// damaged).
var errCorrupt = errors.New("stored value is not a kvop record")

// record is one stored value with its header decoded.
type record struct {
	index  uint64 // LastIndex
	expiry int64  // unix nanoseconds; 0 means the key does not expire
	value  []byte // aliases bbolt memory until copied; see clone
}

// encode lays out the record for bucket.Put. It always allocates: bbolt keeps a reference to
// the slice until the transaction commits.
func (r record) encode() []byte {
	buf := make([]byte, headerSize+len(r.value))
	buf[0] = formatV1
	binary.BigEndian.PutUint64(buf[1:9], r.index)
	binary.BigEndian.PutUint64(buf[9:17], uint64(r.expiry))
	copy(buf[headerSize:], r.value)
	return buf
}

// decode parses a stored value. The returned value aliases raw.
func decode(raw []byte) (record, error) {
	if len(raw) < headerSize || raw[0] != formatV1 {
		return record{}, errCorrupt
	}
	return record{
		index:  binary.BigEndian.Uint64(raw[1:9]),
		expiry: int64(binary.BigEndian.Uint64(raw[9:17])),
		value:  raw[headerSize:],
	}, nil
}

// expired reports whether the record is past its deadline at now (unix nanoseconds). A key is
// invisible from its deadline on, whether or not the reaper has deleted it yet.
func (r record) expired(now int64) bool {
	return r.expiry != 0 && r.expiry <= now
}

// deadline returns the expiry deadline for a write at now with ttl; 0 when ttl is not positive.
func deadline(now time.Time, ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return now.Add(ttl).UnixNano()
}

// corruptErr names the key whose value could not be decoded.
func corruptErr(key []byte) error {
	return fmt.Errorf("%w (key %q)", errCorrupt, key)
}
