-- +goose Up
-- Keysets of kind 'prf' (Tink HMAC-SHA256 PRF): the password pepper (purpose password_pepper),
-- a keyed step before argon2id whose key lives wrapped by the KEK, never in clear in the
-- database (ASVS 4.0.3 2.4.5).
ALTER TABLE keysets DROP CONSTRAINT keysets_kind_check;
ALTER TABLE keysets ADD CONSTRAINT keysets_kind_check CHECK (kind IN ('aead', 'deterministic', 'prf'));

-- +goose Down
DELETE FROM keysets WHERE kind = 'prf';
ALTER TABLE keysets DROP CONSTRAINT keysets_kind_check;
ALTER TABLE keysets ADD CONSTRAINT keysets_kind_check CHECK (kind IN ('aead', 'deterministic'));
