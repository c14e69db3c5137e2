//lint:file-ignore SA1012 passing a nil ctx is what this test is about

package boltdb

import (
	"testing"

	"github.com/kvop/kvop/pkg/kvstore"
)

// TestNilContext: a nil ctx is a caller bug, but the store must not panic on it.
func TestNilContext(t *testing.T) {
	noLeaks(t)
	st, err := Open(nil, []string{tempDB(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Put(nil, "k", []byte("v"), &kvstore.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	w, err := st.Watch(nil, "k")
	if err != nil {
		t.Fatal(err)
	}
	if p := <-w; p == nil {
		t.Fatal("no first event")
	}
	l, _ := st.NewLock(nil, "lock", nil)
	if _, err := l.Lock(nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(nil); err != nil {
		t.Fatal(err)
	}
}
