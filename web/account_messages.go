package web

// Catalogue keys of the account page and the passkey sign-in that Go code hands to templates
// (kept apart from messages.go so the hosted-page framework and these pages merge cleanly).
const (
	msgErrPasskey         msgKey = "error.passkey"
	msgLoginPasskeyButton msgKey = "login.passkey_button" // #nosec G101 -- a message key, not a credential
)

const (
	msgTitleAccount    msgKey = "title.account"
	msgTitleReauth     msgKey = "title.reauth"
	msgTitleAddTOTP    msgKey = "title.add_totp"
	msgTitleAddPasskey msgKey = "title.add_passkey" // #nosec G101 -- a message key, not a credential

	msgErrCurrentPassword     msgKey = "error.current_password"
	msgErrPasskeyAdd          msgKey = "error.passkey_add"
	msgErrFactorName          msgKey = "error.factor_name"
	msgErrFactorLimit         msgKey = "error.factor_limit"
	msgErrRecoveryNeedsFactor msgKey = "error.recovery_needs_factor"

	msgAccountDoneReauth         msgKey = "account.done.reauth"
	msgAccountDoneSessionRevoked msgKey = "account.done.session_revoked"
	msgAccountDoneOthersRevoked  msgKey = "account.done.others_revoked"
	msgAccountDonePassword       msgKey = "account.done.password"
	msgAccountDoneAppRevoked     msgKey = "account.done.app_revoked"
	msgAccountDoneFactorRenamed  msgKey = "account.done.factor_renamed"
	msgAccountDoneFactorRemoved  msgKey = "account.done.factor_removed"
	msgAccountDoneFactorAdded    msgKey = "account.done.factor_added"
)
