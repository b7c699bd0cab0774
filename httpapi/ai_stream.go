package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tutela"
	"tutela/ai/redact"
	"tutela/ai/upstream"
	"tutela/httpapi/middleware"
)

// aiChatStream relays a streamed chat completion (server-sent events). Each chunk's text is
// passed through a restoring stream per choice (and per tool call's arguments), which holds back
// only a tail that could still become a placeholder, so a placeholder split across chunks is
// restored whole. At the end: the ai.inference event, then a last chunk whose "tutela" member
// says what was done, then [DONE]. If the inference cannot be recorded the stream ends with an
// error event instead of [DONE].
func (s *Server) aiChatStream(w http.ResponseWriter, r *http.Request, call *aiCall, out []byte, wantUsage bool) {
	limit := streamLimit(call.provider.TimeoutSeconds)
	ctx, cancel := context.WithTimeout(r.Context(), limit)
	defer cancel()
	up, err := s.d.AI.Stream(ctx, call.target, "/chat/completions", out)
	res := newAIResult(err, true)
	if err != nil {
		if ferr := s.aiFinish(r, call, res, aiStatus(err)); ferr != nil {
			middleware.Logger(r.Context()).Error("record AI inference", "err", ferr)
		}
		middleware.WriteError(w, r, err)
		return
	}
	defer up.Close()
	res.keyID, res.attempts, res.status = up.KeyID, up.Attempts, http.StatusOK
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	timeout := time.Duration(call.provider.TimeoutSeconds) * time.Second
	send := func(v any) bool {
		b, err := json.Marshal(v)
		if err != nil {
			return false
		}
		_ = rc.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := io.WriteString(w, "data: "+string(b)+"\n\n"); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	st := newChatStreams(call)
	var last map[string]any // the last chunk relayed, for the shape of the closing ones
	var usage any
	total := 0
	for {
		data, err := up.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			res.err = err
			switch {
			case r.Context().Err() != nil:
				res.err = context.Canceled
			case ctx.Err() != nil:
				res.err = tutela.Errorf(tutela.EUPSTREAMTIMEOUT, "the provider's answer took longer than %s", limit)
			}
			break
		}
		if total += len(data); total > upstream.MaxResponseBytes {
			res.err = tutela.Errorf(tutela.EUPSTREAM, "the provider's answer is larger than %d MiB", upstream.MaxResponseBytes>>20)
			break
		}
		v, derr := decodeAny(data)
		chunk, ok := v.(map[string]any)
		if derr != nil || !ok {
			res.err = tutela.Errorf(tutela.EUPSTREAM, "the provider sent an event that is not a JSON object")
			break
		}
		if _, bad := chunk["error"]; bad {
			res.err = tutela.Errorf(tutela.EUPSTREAM, "the provider reported an error during the answer")
			break
		}
		if _, ok := chunk["model"]; ok {
			chunk["model"] = call.model.Name
		}
		if u, ok := chunk["usage"]; ok && u != nil {
			usage = u
		}
		choices, _ := chunk["choices"].([]any)
		if len(choices) == 0 && !wantUsage {
			continue // the usage chunk the gateway asked for, which the caller did not
		}
		if !wantUsage {
			delete(chunk, "usage")
		}
		st.apply(choices)
		last = chunk
		if !send(chunk) {
			res.err = context.Canceled
			break
		}
	}
	if res.err == nil {
		// What a provider left unterminated (no finish_reason) still comes out, restored.
		if rest := st.flushAll(); len(rest) > 0 {
			send(closingChunk(last, rest))
		}
	}
	res.prompt, res.complete, res.estimated = usageOf(usage, call, st.raw.Len())
	res.flags = call.red.Flags(st.raw.String())
	res.restored = call.restoredFields(st.x)
	if errors.Is(res.err, context.Canceled) {
		res.err = errCallerGone
	}
	ferr := s.aiFinish(r, call, res, http.StatusOK)
	if ferr != nil {
		middleware.Logger(r.Context()).Error("record AI inference", "err", ferr)
		res.err = tutela.Wrap(ferr, "the inference could not be recorded")
	}
	if res.err != nil {
		send(map[string]any{"error": map[string]any{"code": tutela.ErrorCode(res.err), "message": tutela.ErrorMessage(res.err),
			"request_id": call.requestID}})
		return
	}
	end := closingChunk(last, nil)
	end["tutela"] = call.summary(res)
	send(end)
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
	_ = rc.Flush()
}

// streamLimit bounds a whole streamed answer (each event is bounded by the provider's timeout):
// ten times the timeout, between 2 and 30 minutes, so a provider dripping events cannot hold
// a connection, and the answer's memory, for ever.
func streamLimit(timeoutSeconds int) time.Duration {
	return min(max(10*time.Duration(timeoutSeconds)*time.Second, 2*time.Minute), 30*time.Minute)
}

// errCallerGone is the recorded status of a stream the caller stopped reading.
var errCallerGone = tutela.Errorf(tutela.EUNAVAILABLE, "the caller closed the stream")

// chatStreams are the restoring streams of one streamed completion, keyed by choice and member
// ("0/content", "0/tool/1"), and the raw text the model wrote (for flags).
type chatStreams struct {
	call *aiCall
	x    *redact.Restorer
	m    map[string]*redact.Stream
	raw  strings.Builder
}

func newChatStreams(call *aiCall) *chatStreams {
	return &chatStreams{call: call, x: call.newRestorer(), m: map[string]*redact.Stream{}}
}

func (c *chatStreams) stream(key string, escape func(string) string) *redact.Stream {
	s := c.m[key]
	if s == nil {
		s = c.x.Stream(escape)
		c.m[key] = s
	}
	return s
}

// apply restores the deltas of one chunk's choices in place; a choice that finishes gets its
// held-back tails appended.
func (c *chatStreams) apply(choices []any) {
	for _, ch := range choices {
		choice, _ := ch.(map[string]any)
		if choice == nil {
			continue
		}
		idx := indexOf(choice["index"])
		delta, _ := choice["delta"].(map[string]any)
		if delta == nil {
			delta = map[string]any{}
			choice["delta"] = delta
		}
		for _, k := range aiTextKeys {
			if s, ok := delta[k].(string); ok {
				c.raw.WriteString(s)
				delta[k] = c.stream(idx+"/"+k, c.call.escapeFor(k)).Write(s)
			}
		}
		calls, _ := delta["tool_calls"].([]any)
		for _, tc := range calls {
			t, _ := tc.(map[string]any)
			fn, _ := t["function"].(map[string]any)
			if args, ok := fn["arguments"].(string); ok {
				c.raw.WriteString(args)
				fn["arguments"] = c.stream(idx+"/tool/"+indexOf(t["index"]), jsonEscape).Write(args)
			}
		}
		if fr, _ := choice["finish_reason"].(string); fr != "" {
			c.flushChoice(idx, delta)
		}
	}
}

// flushChoice appends what choice idx's streams still hold to delta.
func (c *chatStreams) flushChoice(idx string, delta map[string]any) {
	for key, s := range c.m {
		rest, ok := strings.CutPrefix(key, idx+"/")
		if !ok {
			continue
		}
		tail := s.Flush()
		delete(c.m, key)
		if tail == "" {
			continue
		}
		if n, ok := strings.CutPrefix(rest, "tool/"); ok {
			i, _ := strconv.Atoi(n)
			calls, _ := delta["tool_calls"].([]any)
			delta["tool_calls"] = append(calls, map[string]any{"index": i, "function": map[string]any{"arguments": tail}})
			continue
		}
		prev, _ := delta[rest].(string)
		delta[rest] = prev + tail
	}
}

// flushAll flushes every stream left, as choices of a closing chunk.
func (c *chatStreams) flushAll() []any {
	byChoice := map[string]map[string]any{}
	for key := range c.m {
		idx, _, _ := strings.Cut(key, "/")
		if byChoice[idx] == nil {
			byChoice[idx] = map[string]any{}
		}
	}
	var out []any
	for idx, delta := range byChoice {
		c.flushChoice(idx, delta)
		if len(delta) > 0 {
			i, _ := strconv.Atoi(idx)
			out = append(out, map[string]any{"index": i, "delta": delta})
		}
	}
	return out
}

// closingChunk is a chunk shaped like last (id, created, model) carrying choices.
func closingChunk(last map[string]any, choices []any) map[string]any {
	out := map[string]any{"object": "chat.completion.chunk", "choices": choices}
	if choices == nil {
		out["choices"] = []any{}
	}
	for _, k := range []string{"id", "created", "model", "system_fingerprint"} {
		if v, ok := last[k]; ok {
			out[k] = v
		}
	}
	return out
}

// indexOf reads a JSON index as a decimal string ("0" when absent).
func indexOf(v any) string {
	if n, ok := v.(json.Number); ok {
		return n.String()
	}
	return "0"
}
