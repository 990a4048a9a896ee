package chat

import "context"

// IssueSession signs in the user with this email without a login code,
// creating the user with the given name if needed; a user that exists
// keeps their name. It is for operators (the "parley admin sessions"
// command, benchmarks and tests), never reachable from the network.
//
// It does not end sessions past Config.MaxSessionsPerUser, as a sign-in
// does: the operator who issues many sessions of one user (a load test of
// one user's many tabs, scripted clients) means to, and the command runs
// apart from the servers, with no broker to reach the connections of the
// sessions it would end. The user's next sign-in by mail trims them with
// the rest.
func (s *Service) IssueSession(ctx context.Context, email, name string) (SignIn, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return SignIn{}, err
	}
	if name, err = NormalizeUserName(name); err != nil {
		return SignIn{}, err
	}
	now := s.cfg.Now()
	u, created, err := s.store.EnsureUser(ctx, email, now)
	if err != nil {
		return SignIn{}, internal("ensure user", err)
	}
	// The name is for a user it creates: one that exists keeps the name
	// they chose, and no one would be told of a change made here.
	if created && u.Name != name {
		if u, err = s.store.SetUserName(ctx, u.ID, name); err != nil {
			return SignIn{}, internal("set user name", err)
		}
	}
	return s.startSession(ctx, u, created, now)
}
