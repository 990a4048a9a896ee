package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config holds the Service's limits and settings. Zero fields take the
// defaults of DefaultConfig.
type Config struct {
	MaxMessageLen   int           // characters per message
	CodeTTL         time.Duration // how long a login code is valid
	CodeAttempts    int           // tries per login code
	CodesPerEmail   int           // login codes sent per email per CodeWindow
	CodesPerIP      int           // login codes sent per client IP per CodeWindow
	CodeWindow      time.Duration
	SessionTTL      time.Duration // session lifetime, renewed on use
	PublicURL       string        // base URL used in mail links
	HistoryLimit    int           // largest history page
	ActiveWindow    time.Duration // window for "most active rooms"
	AnonymousName   string        // sender name shown for anonymous messages
	Now             func() time.Time
	NewCode         func() (string, error) // login code generator (6 digits)
	NewToken        func() (string, error) // session token generator
	MailFromProduct string                 // product name in mail
	MaxGroupMembers int                    // the largest member cap a group may have
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		MaxMessageLen:   4000,
		CodeTTL:         10 * time.Minute,
		CodeAttempts:    5,
		CodesPerEmail:   5,
		CodesPerIP:      30,
		CodeWindow:      15 * time.Minute,
		SessionTTL:      30 * 24 * time.Hour,
		PublicURL:       "http://localhost:8080",
		HistoryLimit:    100,
		ActiveWindow:    24 * time.Hour,
		AnonymousName:   "anonymous",
		Now:             time.Now,
		NewCode:         newCode,
		NewToken:        newToken,
		MailFromProduct: "Parley",
		MaxGroupMembers: DefaultGroupMembers,
	}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.MaxMessageLen <= 0 {
		c.MaxMessageLen = d.MaxMessageLen
	}
	if c.CodeTTL <= 0 {
		c.CodeTTL = d.CodeTTL
	}
	if c.CodeAttempts <= 0 {
		c.CodeAttempts = d.CodeAttempts
	}
	if c.CodesPerEmail <= 0 {
		c.CodesPerEmail = d.CodesPerEmail
	}
	if c.CodesPerIP <= 0 {
		c.CodesPerIP = d.CodesPerIP
	}
	if c.CodeWindow <= 0 {
		c.CodeWindow = d.CodeWindow
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = d.SessionTTL
	}
	if c.PublicURL == "" {
		c.PublicURL = d.PublicURL
	}
	if c.HistoryLimit <= 0 {
		c.HistoryLimit = d.HistoryLimit
	}
	if c.ActiveWindow <= 0 {
		c.ActiveWindow = d.ActiveWindow
	}
	if c.AnonymousName == "" {
		c.AnonymousName = d.AnonymousName
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	if c.NewCode == nil {
		c.NewCode = d.NewCode
	}
	if c.NewToken == nil {
		c.NewToken = d.NewToken
	}
	if c.MaxGroupMembers <= 0 {
		c.MaxGroupMembers = d.MaxGroupMembers
	}
	if c.MailFromProduct == "" {
		c.MailFromProduct = d.MailFromProduct
	}
}

// Service enforces Parley's rules: who may read and write where, what input
// is valid, and that every stored change is published.
type Service struct {
	cfg      Config
	store    Store
	broker   Broker
	presence Presence
	limiter  Limiter
	mailer   Mailer
	log      *slog.Logger
}

// Deps are the parts a Service consumes.
type Deps struct {
	Store    Store
	Broker   Broker
	Presence Presence
	Limiter  Limiter
	Mailer   Mailer
	Logger   *slog.Logger
}

// NewService returns a Service over d with configuration cfg.
func NewService(cfg Config, d Deps) *Service {
	cfg.fill()
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, store: d.Store, broker: d.Broker, presence: d.Presence, limiter: d.Limiter, mailer: d.Mailer, log: log}
}

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// internal wraps an unexpected error from a dependency.
func internal(op string, err error) error {
	if AsError(err) != nil {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

// publish sends ev to t; a failure is logged, never returned: the event is
// already stored and clients recover from the store.
func (s *Service) publish(ctx context.Context, t Topic, ev Event) {
	if err := s.broker.Publish(context.WithoutCancel(ctx), t, ev); err != nil {
		s.log.Warn("publish failed", "topic", string(t), "type", string(ev.Type), "err", err)
	}
}

// User returns a user by id.
func (s *Service) User(ctx context.Context, id int64) (User, error) {
	u, err := s.store.User(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return User{}, Errorf(ErrNotFound, CodeNotFound, "no such user")
	}
	return u, err
}

// SetName changes u's display name.
func (s *Service) SetName(ctx context.Context, u User, name string) (User, error) {
	name, err := NormalizeUserName(name)
	if err != nil {
		return User{}, err
	}
	nu, err := s.store.SetUserName(ctx, u.ID, name)
	if err != nil {
		return User{}, internal("set user name", err)
	}
	return nu, nil
}
