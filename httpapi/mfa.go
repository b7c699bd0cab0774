package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/identity"
	"tutela/mfa"
	"tutela/sqlstore"
)

// challengeError is a 401 that tells the client how to authenticate again (RFC 9470):
// middleware.WriteError sends its WWW-Authenticate header.
type challengeError struct {
	err       error
	challenge string
}

func (e challengeError) Error() string { return e.err.Error() }
func (e challengeError) Unwrap() error { return e.err }

// WWWAuthenticate implements middleware.ChallengeError.
func (e challengeError) WWWAuthenticate() string { return e.challenge }

// errStepUp asks for a fresh second factor: the required acr and max_age.
func errStepUp() error {
	return challengeError{err: tutela.Errorf(tutela.ESTEPUPREQUIRED, "%s", authz.StepUpReason), challenge: authz.StepUpChallenge}
}

// reauthChallenge is satisfied by any fresh authentication event (sign-in, step-up or
// re-entered password) within max_age.
const reauthChallenge = `Bearer error="insufficient_user_authentication", error_description="re-enter your password", max_age=300`

// requireRecentAuth lets p end other sessions only after a fresh authentication (ASVS 7.5.2).
func (s *Server) requireRecentAuth(p *tutela.Principal) error {
	if s.d.Identity.RecentlyAuthenticated(p) {
		return nil
	}
	return challengeError{challenge: reauthChallenge, err: tutela.Errorf(tutela.EREAUTHREQUIRED,
		"ending other sessions needs your password again: POST /v1/auth/reauthenticate, then retry")}
}

type reauthRequest struct {
	Password string `json:"password"`
}

// reauthenticate checks the caller's password again (throttled like sign-in) and marks the
// session freshly authenticated for five minutes.
func (s *Server) reauthenticate(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req reauthRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if req.Password == "" {
		// Not an attempt: it must not count towards the user's lock.
		middleware.WriteError(w, r, tutela.FieldErrorf("password", "password is required"))
		return
	}
	ip, _ := clientInfo(r)
	secret, err := s.d.Identity.Reauthenticate(r.Context(), p, tutela.NewSecret(req.Password), ip)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	s.renewCookie(w, p, secret)
	w.WriteHeader(http.StatusNoContent)
}

// requireHumanStepUp guards changes only a person may make, with a second factor proved in the
// last five minutes: the tenant's security policy, a user's e-mail address, minting service
// accounts and their secrets and keys. A service account has no second factor, so it is refused
// outright; otherwise a step-up that lapsed could be skipped by acting through one.
func (s *Server) requireHumanStepUp(p *tutela.Principal) error {
	if p.Kind != tutela.PrincipalUser {
		return tutela.Errorf(tutela.EFORBIDDEN, "only a person, with a fresh second factor, may make this change")
	}
	return s.requireStepUp(p, stepUpAlways)
}

// stepUpAlways is a decision that asks a person for a fresh second factor whatever the
// policy's obligations (merging and unmerging subjects, changes only a person may make); a
// service account has none to give and passes requireStepUp.
var stepUpAlways = authz.Decision{Obligations: authz.Obligations{StepUpRequired: true}}

// requireStepUp enforces the step-up obligation for human principals. Service accounts have no
// second factor; their permission set is the control.
func (s *Server) requireStepUp(p *tutela.Principal, d authz.Decision) error {
	if !s.d.EnforceStepUp || !d.Obligations.StepUpRequired || p.Kind != tutela.PrincipalUser {
		return nil
	}
	if s.d.Identity.StepUpFresh(p) {
		return nil
	}
	return errStepUp()
}

// writeMFARequired answers a correct password with the challenge that continues the sign-in.
func writeMFARequired(w http.ResponseWriter, r *http.Request, e *identity.MFARequiredError) {
	middleware.WriteJSON(w, http.StatusUnauthorized, map[string]any{
		"error": map[string]string{"code": tutela.EMFAREQUIRED, "message": tutela.ErrorMessage(e),
			"request_id": middleware.RequestIDFrom(r.Context())},
		"mfa": map[string]any{"challenge": e.Challenge.Reveal(), "methods": e.Methods, "expires_in": int64(e.ExpiresIn / time.Second)},
	})
}

// errChallengeMissing: a missing field is a 400 naming it, not a refused credential.
var errChallengeMissing = tutela.FieldErrorf("challenge", "challenge is required: the one POST /v1/auth/login answered with mfa_required")

type mfaCompleteRequest struct {
	Challenge string          `json:"challenge"`
	Code      string          `json:"code"`
	WebAuthn  json.RawMessage `json:"webauthn"`
}

// factor returns the second factor the request carries: a code or a passkey assertion. A request
// with neither (or both) is a 400 naming the field, before anything counts as an attempt.
func (req mfaCompleteRequest) factor() (string, []byte, error) {
	switch {
	case len(req.WebAuthn) > 0 && req.Code == "":
		return "", req.WebAuthn, nil
	case req.Code != "" && len(req.WebAuthn) == 0:
		return req.Code, nil, nil
	}
	return "", nil, tutela.FieldErrorf("code", "give either code (TOTP or recovery code) or webauthn (a passkey assertion)")
}

func (s *Server) completeMFA(w http.ResponseWriter, r *http.Request) {
	var req mfaCompleteRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if req.Challenge == "" {
		middleware.WriteError(w, r, errChallengeMissing)
		return
	}
	code, wa, err := req.factor()
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	ip, ua := clientInfo(r)
	g, err := s.d.Identity.CompleteMFA(r.Context(), req.Challenge, code, wa, ip, ua)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	s.writeGrant(w, g)
}

func (s *Server) mfaWebAuthnOptions(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Challenge string `json:"challenge"`
	}
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if req.Challenge == "" {
		middleware.WriteError(w, r, errChallengeMissing)
		return
	}
	opts, err := s.d.Identity.MFAWebAuthnOptions(r.Context(), req.Challenge)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(opts)
}

func (s *Server) stepUp(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req mfaCompleteRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	code, wa, err := req.factor()
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	ip, _ := clientInfo(r)
	secret, err := s.d.Identity.StepUp(r.Context(), p, code, wa, ip)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	s.renewCookie(w, p, secret)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) stepUpWebAuthnOptions(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	opts, err := s.d.Identity.MFA.BeginWebAuthnLogin(r.Context(), p.TenantID, p.UserID)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(opts) // #nosec G705 -- JSON WebAuthn options sent as application/json, not HTML
}

// changingFactors guards changes to a user's second factors (ASVS 7.5.1): once a factor is
// active, adding, regenerating or removing factors needs a fresh step-up; the first
// enrolment needs only the session.
func (s *Server) changingFactors(r *http.Request, p *tutela.Principal) error {
	has, err := s.d.Identity.MFA.HasActiveFactor(r.Context(), p.TenantID, p.UserID)
	if err != nil || !has {
		return err
	}
	if !s.d.Identity.StepUpFresh(p) {
		return errStepUp()
	}
	return nil
}

func (s *Server) listFactors(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	fs, err := s.d.Identity.MFA.Factors(r.Context(), p.TenantID, p.UserID)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if fs == nil {
		fs = []*mfa.Factor{} // [] not null: the document promises an array
	}
	codeRequired, err := s.d.Identity.EnrollmentCodeRequired(r.Context(), p)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"factors": fs, "must_enroll": p.MustEnrollMFA,
		"enrollment_code_required": codeRequired})
}

func (s *Server) userFor(r *http.Request, p *tutela.Principal) (*tutela.User, error) {
	var u *tutela.User
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) (err error) {
		u, err = tx.Users(p.TenantID).Get(r.Context(), p.UserID)
		return err
	})
	return u, err
}

func (s *Server) beginTOTP(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	if err := s.changingFactors(r, p); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	u, err := s.userFor(r, p)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	en, err := s.d.Identity.MFA.BeginTOTP(r.Context(), p.TenantID, p.UserID, u.Email, "Tutela")
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusCreated, map[string]string{"factor_id": en.FactorID, "otpauth_uri": en.URI.Reveal(),
		"secret": en.Secret.Reveal(), "qr_png": base64.StdEncoding.EncodeToString(en.QRPNG)})
}

func (s *Server) confirmTOTP(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req struct {
		FactorID string `json:"factor_id"`
		Code     string `json:"code"`
		// EnrollmentCode is needed after an administrator's MFA reset (identity.EnrollmentGuard).
		EnrollmentCode string `json:"enrollment_code"`
	}
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	// Missing or malformed fields are the client's mistake, not a wrong code: 400 naming the
	// field, and nothing counts as an attempt.
	switch {
	case req.FactorID == "":
		middleware.WriteError(w, r, tutela.FieldErrorf("factor_id", "factor_id is required: the one POST /v1/auth/mfa/totp returned"))
		return
	case !tutela.ValidID(req.FactorID):
		middleware.WriteError(w, r, tutela.FieldErrorf("factor_id", "factor_id must be the ID POST /v1/auth/mfa/totp returned"))
		return
	case strings.TrimSpace(req.Code) == "":
		middleware.WriteError(w, r, tutela.FieldErrorf("code", "code is required: the 6-digit code the authenticator app shows"))
		return
	}
	ip, _ := clientInfo(r)
	guard, err := s.d.Identity.EnrollmentGuard(r.Context(), p, req.EnrollmentCode, ip)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if err := s.d.Identity.MFA.ConfirmTOTP(r.Context(), p.TenantID, p.UserID, req.FactorID, req.Code, guard); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	s.factorChanged(r, p, identity.ChangeFactorAdded)
	w.WriteHeader(http.StatusNoContent)
}

// newRecoveryCodes replaces the caller's recovery codes. They back up an authenticator app or
// passkey and are accepted wherever a second factor is, so they need an active one first:
// otherwise the password alone would yield codes that pass step-up, or re-enrol a user after an
// administrator's MFA reset without the enrolment code.
func (s *Server) newRecoveryCodes(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	if err := s.changingFactors(r, p); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	has, err := s.d.Identity.MFA.HasActiveFactor(r.Context(), p.TenantID, p.UserID)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if !has {
		middleware.WriteError(w, r, tutela.Errorf(tutela.ECONFLICT,
			"recovery codes back up an authenticator app or passkey: enrol one first (POST /v1/auth/mfa/totp or /v1/auth/mfa/webauthn/register/options)"))
		return
	}
	codes, err := s.d.Identity.MFA.NewRecoveryCodes(r.Context(), p.TenantID, p.UserID)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	out := make([]string, len(codes))
	for i, c := range codes {
		out[i] = c.Reveal()
	}
	s.factorChanged(r, p, identity.ChangeRecoveryCodes)
	middleware.WriteJSON(w, http.StatusCreated, map[string]any{"codes": out})
}

func (s *Server) webAuthnRegisterOptions(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	if err := s.changingFactors(r, p); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	u, err := s.userFor(r, p)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	opts, err := s.d.Identity.MFA.BeginWebAuthnRegistration(r.Context(), p.TenantID, p.UserID, u.Email, u.DisplayName)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(opts) // #nosec G705 -- JSON WebAuthn options sent as application/json, not HTML
}

func (s *Server) webAuthnRegister(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req struct {
		Name     string          `json:"name"`
		Response json.RawMessage `json:"response"`
		// EnrollmentCode is needed after an administrator's MFA reset (identity.EnrollmentGuard).
		EnrollmentCode string `json:"enrollment_code"`
	}
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if len(req.Response) == 0 || string(req.Response) == "null" {
		middleware.WriteError(w, r, tutela.FieldErrorf("response", "response is required: the result of navigator.credentials.create()"))
		return
	}
	ip, _ := clientInfo(r)
	guard, err := s.d.Identity.EnrollmentGuard(r.Context(), p, req.EnrollmentCode, ip)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	id, err := s.d.Identity.MFA.FinishWebAuthnRegistration(r.Context(), p.TenantID, p.UserID, req.Name, req.Response, guard)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	s.factorChanged(r, p, identity.ChangeFactorAdded)
	middleware.WriteJSON(w, http.StatusCreated, map[string]string{"factor_id": id})
}

func (s *Server) removeFactor(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	if err := s.changingFactors(r, p); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if err := s.d.Identity.MFA.RemoveFactor(r.Context(), p.TenantID, p.UserID, r.PathValue("id")); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	s.factorChanged(r, p, identity.ChangeFactorRemoved)
	w.WriteHeader(http.StatusNoContent)
}

// factorChanged records a change to the caller's second factors and queues the e-mail telling
// them (ASVS 5.0 6.3.7), in one transaction, right after the mfa service committed the change.
func (s *Server) factorChanged(r *http.Request, p *tutela.Principal, kind identity.Change) {
	ip, _ := clientInfo(r)
	u, err := s.userFor(r, p)
	if err == nil {
		err = s.d.Identity.RecordFactorChange(r.Context(), u, kind, ip)
	}
	if err != nil {
		middleware.Logger(r.Context()).Error("record security event", "kind", kind, "err", err)
	}
}

// adminResetMFA removes every factor of another user (lost device). It is a MANAGE action:
// it needs the actor's own fresh step-up, is audited, and ends the user's sessions. The user's
// next enrolment needs the one-time enrolment code it issues (the password alone no longer
// suffices): e-mailed to the user when a mailer is configured, otherwise returned here, once, for
// the administrator to hand over in person — the delivery is audited either way.
func (s *Server) adminResetMFA(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	ip, _ := clientInfo(r)
	prep, err := s.d.Identity.PrepareMFAReset(r.PathValue("id"))
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var code tutela.Secret
	var expires time.Time
	var delivery string
	err = s.withUser(r, p, authz.Manage, authz.ResUsers, false, func(tx *sqlstore.Tx, t *tutela.Tenant, u *tutela.User, _ *authz.Policy) error {
		if err := s.allowTakeover(r, tx, p, t, authz.TakeoverMFAReset, u.ID); err != nil {
			return err
		}
		var err error
		code, expires, delivery, err = s.d.Identity.ResetMFA(r.Context(), tx, u, p.UserID, ip, prep)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	out := map[string]any{"enrollment_code_delivery": delivery, "expires_at": expires}
	if delivery != identity.DeliveryEmail {
		out["enrollment_code"] = code.Reveal()
	}
	middleware.WriteJSON(w, http.StatusOK, out)
}
