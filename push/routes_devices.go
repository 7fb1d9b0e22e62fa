package push

// deviceRoutes are the device and subscription routes of the server API.
func (s *Service) deviceRoutes() []SignedRoute { return nil }

// clientRoutes are the client API routes devices call.
func (s *Service) clientRoutes() []Route { return nil }
