package push

// credentialRoutes are the provider-credential routes of the server API.
func (s *Service) credentialRoutes() []SignedRoute { return nil }
