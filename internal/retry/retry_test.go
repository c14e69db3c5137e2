package retry

import (
	"context"
	"testing"
	"time"
)

func TestBackoffGrowsAndCaps(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 400 * time.Millisecond}
	want := []time.Duration{100, 200, 400, 400}
	for i, w := range want {
		w *= time.Millisecond
		got := b.Next()
		if got < w*9/10 || got > w*11/10 {
			t.Fatalf("delay %d = %v, want %v ±10%%", i, got, w)
		}
	}
	b.Reset()
	if got := b.Next(); got > 110*time.Millisecond {
		t.Fatalf("after Reset delay = %v, want ~100ms", got)
	}
}

func TestSleepStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep reported a full delay on a cancelled context")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep did not report a full delay")
	}
}
