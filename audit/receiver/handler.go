package receiver

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"tutela/audit"
	"tutela/notify"
)

// DefaultMaxBody bounds a batch request; the shipper keeps its batches under it.
const DefaultMaxBody = 32 << 20

// Response is the receiver's answer to every authenticated batch: its state after the batch
// (what it holds, so a shipper that lost an acknowledgement or a cursor can resume where the
// receiver stands), and on a refusal the failure.
type Response struct {
	Size           int64     `json:"size"`
	CheckpointSize int64     `json:"checkpoint_size"`
	Error          *Refusal  `json:"error,omitempty"`
	Accepted       *Accepted `json:"accepted,omitempty"`
}

// Refusal says why a batch was not stored. Code is a failure kind of audit.Verify or
// audit.KindReplayed for batch failures, else "unauthenticated", "invalid", "internal".
type Refusal struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Index   *int64 `json:"index,omitempty"`
}

// Accepted describes a stored batch.
type Accepted struct {
	From int64 `json:"from"`
	To   int64 `json:"to"` // exclusive
}

// Handler serves POSTs of audit batches into a Store.
type Handler struct {
	Store *Store
	// Secret is the shared HMAC secret: requests carry Tutela-Timestamp and Tutela-Signature
	// (notify's webhook scheme, HMAC-SHA256 over timestamp "." body). It authenticates the
	// shipper, so nobody else can make the receiver spend work or learn its state; integrity,
	// order and replay rest on the checkpoint signature and the indexes, not on it.
	Secret  string
	Now     func() time.Time
	MaxBody int64
	Log     *slog.Logger
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, Response{Error: &Refusal{Code: "invalid", Message: "POST audit batches here"}})
		return
	}
	limit := h.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, Response{Error: &Refusal{Code: "invalid", Message: "batch too large or unreadable"}})
		return
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	if h.Secret == "" || notify.Verify(h.Secret, r.Header, body, now()) != nil {
		writeJSON(w, http.StatusUnauthorized, Response{Error: &Refusal{Code: "unauthenticated",
			Message: "missing, stale or wrong Tutela-Signature"}})
		return
	}
	var b audit.Batch
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil || dec.More() {
		st := h.Store.State()
		writeJSON(w, http.StatusBadRequest, Response{Size: st.Size, CheckpointSize: st.CheckpointSize,
			Error: &Refusal{Code: "invalid", Message: "malformed batch"}})
		return
	}
	st, err := h.Store.Apply(r.Context(), &b)
	resp := Response{Size: st.Size, CheckpointSize: st.CheckpointSize}
	var be *audit.BatchError
	switch {
	case errors.As(err, &be):
		resp.Error = &Refusal{Code: be.Kind, Message: be.Detail}
		if be.Index >= 0 {
			resp.Error.Index = &be.Index
		}
		status := http.StatusUnprocessableEntity
		if be.Kind == audit.KindReplayed || (be.Kind == audit.KindMissingEntry && be.Index == st.Size) {
			status = http.StatusConflict // out of step with the shipper, not evidence of tampering
		}
		h.logger().Warn("audit batch refused", "from", b.From, "entries", len(b.Entries), "kind", be.Kind,
			"index", be.Index, "detail", be.Detail)
		writeJSON(w, status, resp)
	case err != nil:
		h.logger().Error("audit batch not stored", "from", b.From, "err", err)
		resp.Error = &Refusal{Code: "internal", Message: "the receiver could not store the batch"}
		writeJSON(w, http.StatusInternalServerError, resp)
	default:
		resp.Accepted = &Accepted{From: b.From, To: b.From + int64(len(b.Entries))}
		h.logger().Info("audit batch stored", "from", b.From, "to", resp.Accepted.To, "checkpoint", st.CheckpointSize)
		writeJSON(w, http.StatusOK, resp)
	}
}

func (h *Handler) logger() *slog.Logger {
	if h.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Log
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
