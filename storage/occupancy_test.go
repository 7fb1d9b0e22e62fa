package storage

import (
	"fmt"
	"path/filepath"
	"testing"
)

func TestOccupancy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.db")
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.ApplyOccupancy([]OccupancyChange{
		{App: "a", Channel: "presence-x", Open: true},
		{App: "a", Channel: "presence-x", UserID: "u1", Open: true},
		{App: "a", Channel: "presence-x", UserID: "u2", Open: true},
		{App: "a", Channel: "c", Open: true},
		{App: "a", Channel: "gone", Open: true},
		{App: "a", Channel: "gone", Open: false},
		{App: "a", Channel: "presence-x", UserID: "u2", Open: false},
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close() // survives a restart
	if db, err = Open(path, nil); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.TakeOccupancy()
	if err != nil {
		t.Fatal(err)
	}
	want := "[{a presence-x u1 true} {a c  true} {a presence-x  true}]"
	if fmt.Sprint(got) != want {
		t.Fatalf("got %v, want %v (members first)", got, want)
	}
	if again, _ := db.TakeOccupancy(); len(again) != 0 {
		t.Fatalf("records not deleted: %v", again)
	}
}
