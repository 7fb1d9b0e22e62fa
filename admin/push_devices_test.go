package admin

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockudo/sockudo/storage"
)

// lateDevices serves the devices of a database set after the server
// starts (newTestAdminWith opens it).
type lateDevices struct{ db atomic.Pointer[storage.DB] }

func (l *lateDevices) ListDevices(app string, f storage.DeviceFilter, cursor string, limit int) ([]storage.Device, string, error) {
	return l.db.Load().ListDevices(app, f, cursor, limit)
}
func (l *lateDevices) Device(app, id string) (storage.Device, error) {
	return l.db.Load().Device(app, id)
}
func (l *lateDevices) DeleteDevice(app, id string) (storage.Device, error) {
	return l.db.Load().DeleteDevice(app, id)
}

func TestAdminPushDevices(t *testing.T) {
	late := &lateDevices{}
	c, db, _ := newTestAdminWith(t, func(srv *Server) { srv.PushDevices = late })
	late.db.Store(db)
	token := "a-long-fcm-token-ending-in-654321"
	d, _, err := db.PutDevice(storage.Device{App: "a", Platform: storage.PlatformFCM, Token: token, UserID: "u",
		SecretHash: storage.TokenHash("s")}, storage.DeviceLimits{}, time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	page, next, err := c.ListDevices("a", storage.DeviceFilter{UserID: "u"}, "", 10)
	if err != nil || next != "" || len(page) != 1 || page[0].ID != d.ID {
		t.Fatalf("ListDevices = %+v, %q, %v", page, next, err)
	}
	if page[0].Token != "654321" || page[0].SecretHash != "" || page[0].TokenHash != d.TokenHash {
		t.Fatalf("not redacted: %+v", page[0])
	}
	if got, err := c.Device("a", d.ID); err != nil || got.Token != "654321" {
		t.Fatalf("Device = %+v, %v", got, err)
	}
	if _, err := c.DeleteDevice("a", d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Device("a", d.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleted device: %v", err)
	}
	entries, err := c.Audit(storage.AuditFilter{App: "a", Action: "push_device_deleted"})
	if err != nil || len(entries) != 1 {
		t.Fatalf("audit = %+v, %v", entries, err)
	}
}
