package web

// Catalogue keys that Go code hands to templates. Keys written in templates ({{.T "…"}}) need
// no constant; TestCatalogues_EveryKeyInEveryLanguage checks both kinds against every language.
const (
	msgTitleError     msgKey = "title.error"
	msgTitleLogin     msgKey = "title.login"
	msgTitleMFA       msgKey = "title.mfa"
	msgTitleEnroll    msgKey = "title.enroll"
	msgTitleRecovery  msgKey = "title.recovery"
	msgTitleConsent   msgKey = "title.consent"
	msgTitleForgot    msgKey = "title.forgot"
	msgTitleReset     msgKey = "title.reset"
	msgTitleLogout    msgKey = "title.logout"
	msgTitleLoggedOut msgKey = "title.logged_out"

	msgErrInternal           msgKey = "error.internal"
	msgErrNotFound           msgKey = "error.not_found"
	msgErrTooLarge           msgKey = "error.too_large"
	msgErrBadRequest         msgKey = "error.bad_request"
	msgErrCSRF               msgKey = "error.csrf"
	msgErrThrottled          msgKey = "error.throttled"
	msgErrNoRequest          msgKey = "error.no_request"
	msgErrRequestGone        msgKey = "error.request_gone"
	msgErrMissingCredentials msgKey = "error.missing_credentials"
	msgErrCredentials        msgKey = "error.credentials" // #nosec G101 -- a message key, not a credential
	msgErrPasswordChange     msgKey = "error.password_change"
	msgErrChallengeExpired   msgKey = "error.challenge_expired"
	msgErrCodeMissing        msgKey = "error.code_missing"
	msgErrCode               msgKey = "error.code"
	msgErrEnrollCodeMissing  msgKey = "error.enroll_code_missing"
	msgErrEnrollCode         msgKey = "error.enroll_code"
	msgErrEmailMissing       msgKey = "error.email_missing"
	msgErrResetUnavailable   msgKey = "error.reset_unavailable"
	msgErrBusy               msgKey = "error.busy"
	msgErrResetCode          msgKey = "error.reset_code"
	msgErrPasswordMissing    msgKey = "error.password_missing"
	msgErrPasswordMismatch   msgKey = "error.password_mismatch"
	msgErrPasswordWeak       msgKey = "error.password_weak"

	msgScopeOpenID  msgKey = "scope.openid"
	msgScopeProfile msgKey = "scope.profile"
	msgScopeEmail   msgKey = "scope.email"
	msgScopeRoles   msgKey = "scope.roles"
	msgScopeOffline msgKey = "scope.offline_access"
)
