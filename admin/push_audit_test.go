package admin

import (
	"testing"

	"github.com/sockudo/sockudo/storage"
)

func TestAdminVerifyPushAudit(t *testing.T) {
	c, db, _ := newTestAdmin(t)
	for _, app := range []string{"b", "a", "b"} {
		if _, err := db.AppendPushAudit([]storage.PushAuditEntry{{App: app, Actor: "system", Action: "publish.finish"}}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := c.VerifyPushAudit("")
	if err != nil || len(all) != 2 || all[0].App != "a" || !all[0].OK || all[1].Entries != 2 || !all[1].OK {
		t.Fatalf("verify all = %+v, %v", all, err)
	}
	one, err := c.VerifyPushAudit("b")
	if err != nil || len(one) != 1 || one[0].App != "b" || one[0].Entries != 2 {
		t.Fatalf("verify b = %+v, %v", one, err)
	}

	c2, _, _ := newTestAdminWith(t, func(s *Server) { s.PushAudit = nil })
	if _, err := c2.VerifyPushAudit(""); err == nil {
		t.Fatal("verify without a verifier succeeded")
	}
}
