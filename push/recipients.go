package push

import (
	"time"

	"github.com/sockudo/sockudo/storage"
)

// recipient is one device a publish goes to.
type recipient struct {
	id, platform, user string
}

// resolvePage is how many devices one index read returns.
const resolvePage = 1000

// resolve lists the devices a publish reaches now: each at most once (a
// device with two of the publish's interests gets one notification), only
// on platforms the publish has a payload for, and for channels only
// devices whose subscription's authorization has not lapsed. More than
// max devices (0: no bound) is refused before anything is stored.
func (s *Service) resolve(app string, p Publish, max int) ([]recipient, *apiError) {
	return s.resolveWhere(app, p, max, nil)
}

// resolveWhere is resolve keeping only devices for which keep (when not
// nil) is true.
func (s *Service) resolveWhere(app string, p Publish, max int, keep func(storage.Device) bool) ([]recipient, *apiError) {
	now := s.now()
	skip := map[string]bool{}
	if at := p.SendAt; at.After(now) {
		now = at
	}
	for _, platform := range []string{storage.PlatformAPNs, storage.PlatformFCM, storage.PlatformWeb} {
		if !p.renders(platform, now) {
			skip[platform] = true
		}
	}
	seen := map[string]bool{}
	out := []recipient{}
	add := func(d storage.Device) *apiError {
		if seen[d.ID] || skip[d.Platform] || keep != nil && !keep(d) {
			return nil
		}
		seen[d.ID] = true
		if max > 0 && len(out) >= max {
			return errorf(400, "too_many_recipients", "the publish reaches more than the app's %d devices per publish", max)
		}
		out = append(out, recipient{id: d.ID, platform: d.Platform, user: d.UserID})
		return nil
	}
	if p.Kind == ToDevices {
		devs, err := s.db.Devices(app, p.Names)
		if err != nil {
			return nil, storageError(err)
		}
		for _, id := range p.Names {
			if d, ok := devs[id]; ok {
				if e := add(d); e != nil {
					return nil, e
				}
			}
		}
		return out, nil
	}
	for _, name := range p.Names {
		var f storage.DeviceFilter
		switch p.Kind {
		case ToInterests:
			f.Interest = name
		case ToUsers:
			f.UserID = name
		case ToChannels:
			f.Channel = name
		}
		cursor := ""
		for {
			page, next, err := s.db.ListDevices(app, f, cursor, resolvePage)
			if err != nil {
				return nil, storageError(err)
			}
			for _, d := range page {
				if p.Kind == ToChannels && !d.Subscribed(name, s.now()) {
					continue
				}
				if e := add(d); e != nil {
					return nil, e
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	return out, nil
}

// renders reports whether p has a payload for platform when sent at now.
func (p Publish) renders(platform string, now time.Time) bool {
	switch platform {
	case storage.PlatformAPNs:
		r, e := p.RenderAPNs(now)
		return e == nil && r.Payload != nil
	case storage.PlatformFCM:
		r, e := p.RenderFCM(now)
		return e == nil && r != nil
	case storage.PlatformWeb:
		r, e := p.RenderWeb(now)
		return e == nil && r.Payload != nil
	}
	return false
}
