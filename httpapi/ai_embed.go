package httpapi

import (
	"encoding/json"
	"net/http"

	"tutela"
	"tutela/ai"
	"tutela/httpapi/middleware"
)

// embeddingsRequest is an OpenAI embeddings request. The input is text (a string or an array of
// strings): token arrays are refused, since the gateway cannot read them for identifiers.
type embeddingsRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat *string         `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
	User           json.RawMessage `json:"user"`
	Tutela         *aiOptions      `json:"tutela"`
}

func (e *embeddingsRequest) options() *aiOptions { return e.Tutela }

// maxEmbeddingInputs bounds the strings of one embeddings call.
const maxEmbeddingInputs = 2048

func (e *embeddingsRequest) inputs() ([]string, bool, error) {
	var one string
	if err := json.Unmarshal(e.Input, &one); err == nil {
		return []string{one}, true, nil
	}
	var many []string
	if err := json.Unmarshal(e.Input, &many); err != nil || len(many) == 0 || len(many) > maxEmbeddingInputs {
		return nil, false, tutela.FieldErrorf("input", "input must be a string or 1 to %d strings (token arrays cannot be checked for identifiers)", maxEmbeddingInputs)
	}
	return many, false, nil
}

// aiEmbeddings is POST /v1/ai/embeddings: every input redacted, the provider's answer relayed as
// it is (vectors carry no placeholders to restore).
func (s *Server) aiEmbeddings(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req embeddingsRequest
	opts, ok := s.aiRequest(w, r, &req)
	if !ok {
		return
	}
	if !ai.ValidModelName(req.Model) {
		middleware.WriteError(w, r, tutela.FieldErrorf("model", "model is required: one of GET /v1/ai/models"))
		return
	}
	if req.EncodingFormat != nil && *req.EncodingFormat != "float" && *req.EncodingFormat != "base64" {
		middleware.WriteError(w, r, tutela.FieldErrorf("encoding_format", "encoding_format must be float or base64"))
		return
	}
	if req.Dimensions != nil && (*req.Dimensions < 1 || *req.Dimensions > 65536) {
		middleware.WriteError(w, r, tutela.FieldErrorf("dimensions", "dimensions must be between 1 and 65536"))
		return
	}
	if req.User != nil {
		middleware.WriteError(w, r, tutela.FieldErrorf("user", "user is not forwarded: Tutela records who called and keeps it from the provider"))
		return
	}
	inputs, single, err := req.inputs()
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if opts.Attach {
		middleware.WriteError(w, r, tutela.FieldErrorf("tutela.attach", "attach is for chat completions"))
		return
	}
	call, out, err := s.aiPrepare(r, p, opts, req.Model, ai.KindEmbedding, func(call *aiCall, _ []aiSubject) ([]byte, error) {
		red := make([]string, len(inputs))
		for i, in := range inputs {
			var err error
			if red[i], err = call.redact(in); err != nil {
				return nil, err
			}
		}
		body := map[string]any{"model": call.model.Upstream, "input": red}
		if single {
			body["input"] = red[0]
		}
		if req.EncodingFormat != nil {
			body["encoding_format"] = *req.EncodingFormat
		}
		if req.Dimensions != nil {
			body["dimensions"] = *req.Dimensions
		}
		return json.Marshal(body)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	extendWriteDeadline(w, call.provider)
	resp, err := s.d.AI.Do(r.Context(), call.target, "/embeddings", out)
	res := newAIResult(err, false)
	if resp != nil {
		res.status, res.keyID, res.attempts = resp.Status, resp.KeyID, resp.Attempts
		var u struct {
			Usage json.RawMessage `json:"usage"`
		}
		if json.Unmarshal(resp.Body, &u) != nil {
			res.err = tutela.Errorf(tutela.EUPSTREAM, "the provider's answer is not a JSON object")
		} else {
			v, _ := decodeAny(orNull(u.Usage))
			res.prompt, res.complete, res.estimated = usageOf(v, call, 0)
			res.complete = 0
		}
	}
	if !s.aiEnd(w, r, call, res) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp.Body)
}

func orNull(b []byte) []byte {
	if len(b) == 0 {
		return []byte("null")
	}
	return b
}
