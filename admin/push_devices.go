package admin

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/sockudo/sockudo/storage"
)

// PushDeviceService lists, reads and deletes push devices; *storage.DB
// implements it.
type PushDeviceService interface {
	ListDevices(app string, f storage.DeviceFilter, cursor string, limit int) ([]storage.Device, string, error)
	Device(app, id string) (storage.Device, error)
	DeleteDevice(app, id string) (storage.Device, error)
}

// DevicePage is a page of push devices and the cursor of the next one
// ("" after the last).
type DevicePage struct {
	Items      []storage.Device `json:"items"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

// redacted is d as the admin socket hands it out: the token cut to its last
// 6 characters, no secret hash, challenges or web subscription keys.
func redacted(d storage.Device) storage.Device {
	if len(d.Token) > 6 {
		d.Token = d.Token[len(d.Token)-6:]
	}
	d.SecretHash, d.Challenges, d.WebP256dh, d.WebAuth = "", nil, "", ""
	return d
}

func (s *Server) pushDevices(w http.ResponseWriter) bool {
	if s.PushDevices == nil {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "push devices are not served"})
		return false
	}
	return true
}

func (s *Server) listPushDevices(w http.ResponseWriter, r *http.Request) {
	if !s.pushDevices(w) {
		return
	}
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	f := storage.DeviceFilter{UserID: q.Get("user"), Platform: q.Get("platform"), Interest: q.Get("interest"), Channel: q.Get("channel")}
	page, next, err := s.PushDevices.ListDevices(q.Get("app"), f, q.Get("cursor"), limit)
	if err != nil {
		writeErr(w, err)
		return
	}
	for i := range page {
		page[i] = redacted(page[i])
	}
	writeJSON(w, http.StatusOK, DevicePage{page, next})
}

func (s *Server) getPushDevice(w http.ResponseWriter, r *http.Request) {
	if !s.pushDevices(w) {
		return
	}
	d, err := s.PushDevices.Device(r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, redacted(d))
}

func (s *Server) deletePushDevice(w http.ResponseWriter, r *http.Request) {
	if !s.pushDevices(w) {
		return
	}
	d, err := s.PushDevices.DeleteDevice(r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		writeErr(w, err)
		return
	}
	s.record(d.App, "push_device_deleted", "device="+d.ID+" platform="+d.Platform+" via=admin")
	writeJSON(w, http.StatusOK, redacted(d))
}

// ListDevices lists an app's push devices matching f after cursor (see
// storage.DB.ListDevices); tokens come back cut to their last 6
// characters.
func (c *Client) ListDevices(app string, f storage.DeviceFilter, cursor string, limit int) ([]storage.Device, string, error) {
	q := url.Values{"app": {app}, "user": {f.UserID}, "platform": {f.Platform}, "interest": {f.Interest},
		"channel": {f.Channel}, "cursor": {cursor}, "limit": {strconv.Itoa(limit)}}
	var p DevicePage
	err := c.do("GET", "/push/devices?"+q.Encode(), nil, &p)
	return p.Items, p.NextCursor, err
}

// Device returns one push device (token cut as in ListDevices).
func (c *Client) Device(app, id string) (storage.Device, error) {
	var d storage.Device
	return d, c.do("GET", "/push/devices/"+url.PathEscape(app)+"/"+url.PathEscape(id), nil, &d)
}

// DeleteDevice deletes a push device, audited by the server, and returns it.
func (c *Client) DeleteDevice(app, id string) (storage.Device, error) {
	var d storage.Device
	return d, c.do("DELETE", "/push/devices/"+url.PathEscape(app)+"/"+url.PathEscape(id), nil, &d)
}
