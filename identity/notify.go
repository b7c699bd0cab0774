package identity

import (
	"context"
	"time"

	"tutela/mail"
)

// notify sends one message in the background (bounded to a minute, never failing the caller);
// Close waits for it. Without a mailer it does nothing.
func (s *Service) notify(ctx context.Context, m mail.Message, what string) {
	if s.Mailer == nil || m.To == "" {
		return
	}
	s.goBackground(ctx, what+" notification", func(bg context.Context) error { return s.Mailer.Send(bg, m) })
}

// goBackground runs fn after the request, with a minute to finish, if one of the
// MaxBackgroundJobs slots is free; otherwise it drops the work and logs that it did. Close
// waits for running work. The caller's answer never depends on it.
func (s *Service) goBackground(ctx context.Context, what string, fn func(context.Context) error) {
	select {
	case s.slots <- struct{}{}:
	default:
		s.log.Warn("background work dropped: too much at once", "what", what, "max", MaxBackgroundJobs)
		return
	}
	s.background.Add(1)
	go func() {
		defer func() { <-s.slots; s.background.Done() }()
		bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := fn(bg); err != nil {
			s.log.Error(what, "err", err)
		}
	}()
}

// NotifyEmailChanged tells the old address that the account's e-mail address changed, so a
// takeover that redirects password resets elsewhere does not go unnoticed (ASVS 7.5.1).
func (s *Service) NotifyEmailChanged(ctx context.Context, oldEmail, newEmail string) {
	s.notify(ctx, mail.Message{To: oldEmail, Subject: "Your e-mail address was changed",
		Text: "The e-mail address of your account " + oldEmail + " was changed to " + newEmail +
			".\n\nPassword reset codes now go to the new address. If you did not ask for this, contact your " +
			"administrator at once.\n"}, "e-mail change")
}
