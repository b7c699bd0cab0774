-- +goose Up
-- Request rate-limit counts shared by the nodes on one database (http.rate_limit.share_every;
-- httpapi/middleware/ratelimit_shared.go): per client network and fixed window, the requests
-- all nodes together allowed. Each node adds what it allowed since its last flush and reads the
-- totals back; windows older than the previous two are pruned, so a row lives seconds. key is a
-- SHA-256 over the window length and the client network (an IPv4 address or an IPv6 /64), so
-- no address is stored in the clear. No tenant data (requests are limited before anyone is
-- authenticated), hence no row-level security.
-- UNLOGGED: the counts are worth nothing after a crash (they would have expired anyway), so
-- they are not written to the WAL.
CREATE UNLOGGED TABLE rate_windows (
    key    BYTEA NOT NULL,
    win    BIGINT NOT NULL,
    hits   BIGINT NOT NULL CHECK (hits >= 0),
    PRIMARY KEY (key, win)
);
CREATE INDEX rate_windows_win ON rate_windows (win);

-- +goose Down
DROP TABLE rate_windows;
