package webhooks

import (
	"github.com/sockudo/sockudo/storage"
)

// trackLocked records the raw channel and member transitions of apps that
// want channel_vacated or member_removed. d.mu must be held.
func (d *Dispatcher) trackLocked(as *appState, e Event) {
	var c storage.OccupancyChange
	switch {
	case as.tracks&bit(ChannelVacated) != 0 && (e.Name == ChannelOccupied || e.Name == ChannelVacated):
		c = storage.OccupancyChange{App: e.App, Channel: e.Channel, Open: e.Name == ChannelOccupied}
	case as.tracks&bit(MemberRemoved) != 0 && (e.Name == MemberAdded || e.Name == MemberRemoved):
		c = storage.OccupancyChange{App: e.App, Channel: e.Channel, UserID: e.UserID, Open: e.Name == MemberAdded}
	default:
		return
	}
	d.occ = append(d.occ, c)
	d.kickPersist()
}

// reportOrphans decides channel_vacated and member_removed for what the
// previous process left occupied: it ended without reporting them (a
// crash). They go through the gate, so clients reconnecting within the
// grace period cancel them as they would a page reload.
func (d *Dispatcher) reportOrphans() error {
	orphans, err := d.db.TakeOccupancy()
	if err != nil {
		return err
	}
	if len(orphans) == 0 {
		return nil
	}
	snap := d.state.Load()
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.clock.Now()
	for _, o := range orphans {
		as := snap.apps[o.App]
		if as == nil {
			continue
		}
		e := Event{App: o.App, Name: ChannelVacated, Channel: o.Channel}
		if o.UserID != "" {
			e.Name, e.UserID = MemberRemoved, o.UserID
		}
		if as.tracks&bit(e.Name) == 0 {
			continue
		}
		d.gateLocked(as, e, now)
	}
	d.log.Info("reporting channels and members left by an unclean stop", "records", len(orphans))
	return nil
}
