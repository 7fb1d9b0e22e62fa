package push

// beamsDeviceRoutes are the routes of Beams' device API (not yet served).
func (s *Service) beamsDeviceRoutes() []Route { return nil }
