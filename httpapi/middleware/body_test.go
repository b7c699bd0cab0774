package middleware_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tutela"
	"tutela/httpapi/middleware"
)

type person struct {
	Name    string `json:"name"`
	Age     int    `json:"age"`
	Admin   bool   `json:"admin"`
	Address struct {
		Zip string `json:"zip"`
	} `json:"address"`
	Tags []string `json:"tags"`
}

// decodeHandler decodes a person and writes 200, or writes the error.
func decodeHandler(got *person) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p person
		if err := middleware.DecodeJSON(w, r, &p); err != nil {
			middleware.WriteError(w, r, err)
			return
		}
		if got != nil {
			*got = p
		}
		w.WriteHeader(http.StatusOK)
	})
}

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	const jsonCT = "application/json"
	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int
		wantCode    string
		wantField   string
		wantMessage string // substring
	}{
		{"valid", jsonCT, `{"name":"Ana","age":30,"address":{"zip":"1000"}}`, 200, "", "", ""},
		{"valid with charset", "application/json; charset=utf-8", `{"name":"Ana"}`, 200, "", "", ""},
		{"charset case", "Application/JSON; charset=UTF-8", `{"name":"Ana"}`, 200, "", "", ""},
		{"surrounding whitespace", jsonCT, " \n\t{\"name\":\"Ana\"}\r\n ", 200, "", "", ""},
		{"empty object", jsonCT, `{}`, 200, "", "", ""},

		{"missing content type", "", `{"name":"Ana"}`, 415, "unsupported_media", "", "application/json"},
		{"text/plain (CSRF form)", "text/plain", `{"name":"Ana"}`, 415, "unsupported_media", "", "application/json"},
		{"form", "application/x-www-form-urlencoded", `name=Ana`, 415, "unsupported_media", "", ""},
		{"other charset", "application/json; charset=latin1", `{"name":"Ana"}`, 415, "unsupported_media", "", ""},
		{"extra parameter", "application/json; boundary=x", `{"name":"Ana"}`, 415, "unsupported_media", "", ""},
		{"lookalike type", "application/jsonp", `{"name":"Ana"}`, 415, "unsupported_media", "", ""},
		{"unparsable type", "application/json; ;", `{"name":"Ana"}`, 415, "unsupported_media", "", ""},

		{"empty body", jsonCT, ``, 400, "invalid", "", "must not be empty"},
		{"whitespace body", jsonCT, "  \n ", 400, "invalid", "", "must not be empty"},
		{"malformed", jsonCT, `{"name": }`, 400, "invalid", "", "malformed JSON at offset 10"},
		{"malformed after whitespace", jsonCT, `  {"name": }`, 400, "invalid", "", "malformed JSON at offset 12"},
		{"truncated", jsonCT, `{"name": "Ana"`, 400, "invalid", "", "truncated"},
		{"unknown field", jsonCT, `{"name":"Ana","is_admin":true}`, 400, "invalid", "is_admin", `unknown field "is_admin"`},
		{"wrong type number", jsonCT, `{"age":"thirty"}`, 400, "invalid", "age", `field "age" must be an integer`},
		{"fraction for integer", jsonCT, `{"age":1.5}`, 400, "invalid", "age", `field "age" must be an integer`},
		{"wrong type string", jsonCT, `{"name":7}`, 400, "invalid", "name", `field "name" must be a string`},
		{"wrong type bool", jsonCT, `{"admin":"yes"}`, 400, "invalid", "admin", `field "admin" must be a boolean`},
		{"wrong type array", jsonCT, `{"tags":"a"}`, 400, "invalid", "tags", `field "tags" must be an array`},
		{"nested wrong type", jsonCT, `{"address":{"zip":1000}}`, 400, "invalid", "address.zip", `field "address.zip" must be a string`},
		{"trailing object", jsonCT, `{"name":"Ana"}{"name":"Eve"}`, 400, "invalid", "", "request body must contain a single JSON object"},
		{"trailing garbage", jsonCT, `{"name":"Ana"} x`, 400, "invalid", "", "request body must contain a single JSON object"},
		{"trailing brace", jsonCT, `{"name":"Ana"}}`, 400, "invalid", "", "request body must contain a single JSON object"},
		{"null", jsonCT, `null`, 400, "invalid", "", "must be a JSON object"},
		{"array", jsonCT, `[{"name":"Ana"}]`, 400, "invalid", "", "must be a JSON object"},
		{"string", jsonCT, `"Ana"`, 400, "invalid", "", "must be a JSON object"},
		{"over default cap", jsonCT, `{"name":"` + strings.Repeat("a", middleware.MaxJSONBody) + `"}`, 413, "too_large", "", "1048576"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest("POST", "/v1/people", strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			rec := httptest.NewRecorder()
			decodeHandler(nil).ServeHTTP(rec, req)

			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantStatus == 200 {
				return
			}
			d := decodeError(t, rec)
			if d.Code != tt.wantCode || d.Field != tt.wantField || !strings.Contains(d.Message, tt.wantMessage) {
				t.Errorf("error = %+v, want code %q field %q message containing %q", d, tt.wantCode, tt.wantField, tt.wantMessage)
			}
			for _, leak := range []string{"middleware_test", "person", "Go struct", "json:"} {
				if strings.Contains(d.Message, leak) {
					t.Errorf("message %q leaks %q", d.Message, leak)
				}
			}
		})
	}
}

func TestDecodeJSON_DecodesValue(t *testing.T) {
	t.Parallel()
	var got person
	req := httptest.NewRequest("POST", "/", strings.NewReader(`{"name":"Ana","age":30,"address":{"zip":"1000"},"tags":["a"]}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	decodeHandler(&got).ServeHTTP(rec, req)
	if rec.Code != 200 || got.Name != "Ana" || got.Age != 30 || got.Address.Zip != "1000" || len(got.Tags) != 1 {
		t.Errorf("status %d, decoded %+v", rec.Code, got)
	}
}

func TestDecodeJSON_ReturnsTutelaError(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest("POST", "/", strings.NewReader(`{"x":1}`))
	req.Header.Set("Content-Type", "application/json")
	err := middleware.DecodeJSON(httptest.NewRecorder(), req, &person{})
	var te *tutela.Error
	if !errors.As(err, &te) || te.Code != tutela.EINVALID || te.Field != "x" {
		t.Errorf("err = %#v, want *tutela.Error invalid on field x", err)
	}
}

func TestDecodeJSON_NonPointerIsOurBug(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest("POST", "/", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	err := middleware.DecodeJSON(httptest.NewRecorder(), req, person{})
	if code := tutela.ErrorCode(err); code != tutela.EINTERNAL {
		t.Errorf("code = %q, want internal", code)
	}
}

func TestDecodeJSON_ReadErrorIsInvalid(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest("POST", "/", io.MultiReader(strings.NewReader(`{"name":`), errReader{}))
	req.Header.Set("Content-Type", "application/json")
	err := middleware.DecodeJSON(httptest.NewRecorder(), req, &person{})
	var te *tutela.Error
	if !errors.As(err, &te) || te.Code != tutela.EINVALID || te.Message != "request body could not be read" {
		t.Errorf("err = %v, want invalid unreadable body", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestBodyLimit_ContentLengthOverLimit(t *testing.T) {
	t.Parallel()
	called := false
	h := middleware.BodyLimit(16)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called = true
	}))
	req := httptest.NewRequest("POST", "/v1/people", strings.NewReader(`{"name":"a long name here"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)

	if called {
		t.Error("handler ran for an oversized request")
	}
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", rec.Code)
	}
	if d := decodeError(t, rec); d.Code != "too_large" || !strings.Contains(d.Message, "16 bytes") {
		t.Errorf("error = %+v", d)
	}
}

func TestBodyLimit_AtLimitAccepted(t *testing.T) {
	t.Parallel()
	body := `{"name":"abcde"}` // 16 bytes
	req := httptest.NewRequest("POST", "/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	middleware.BodyLimit(int64(len(body)))(decodeHandler(nil)).ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("status = %d, want 200; %s", rec.Code, rec.Body)
	}
}

// A chunked body declares no length, so only the MaxBytesReader stops it. This runs through a
// real server so the body really is sent with Transfer-Encoding: chunked.
func TestBodyLimit_ChunkedOverLimit(t *testing.T) {
	t.Parallel()
	inner := decodeHandler(nil)
	srv := httptest.NewServer(middleware.BodyLimit(64)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != -1 {
			t.Errorf("ContentLength = %d, want -1 (chunked)", r.ContentLength)
		}
		inner.ServeHTTP(w, r)
	})))
	t.Cleanup(srv.Close)

	body := io.MultiReader(strings.NewReader(`{"name":"` + strings.Repeat("a", 200) + `"}`)) // unknown length
	req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/v1/people", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", resp.StatusCode)
	}
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	_, _ = io.Copy(rec.Body, resp.Body)
	if d := decodeError(t, rec); d.Code != "too_large" {
		t.Errorf("code = %q, want too_large", d.Code)
	}
}

// keyed has every kind of container checkKeys descends into: nested structs, a slice of
// structs, a map, a free-form value, and an embedded struct whose fields are promoted.
type keyed struct {
	Slug   string            `json:"slug"`
	Labels map[string]string `json:"labels"`
	Items  []struct {
		SKU string `json:"sku"`
	} `json:"items"`
	Address *struct {
		Zip string `json:"zip"`
	} `json:"address"`
	Raw json.RawMessage `json:"raw"`
	Any any             `json:"any"`
	embedded
}

type embedded struct {
	TenantID string `json:"tenant_id"`
}

// An object whose keys repeat, exactly or in another letter case, or whose key is a case
// variant of a field, decodes differently in encoding/json (last wins, case-insensitive) than
// in other parsers; each is refused naming the key.
func TestDecodeJSON_KeyRules(t *testing.T) {
	t.Parallel()
	nest := func(n int) string { // n levels of arrays inside "raw", itself at level 2
		return `{"raw":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
	}
	tests := []struct {
		name        string
		body        string
		wantField   string // "" with wantMessage "" means accepted
		wantMessage string
	}{
		{"plain", `{"slug":"t7","items":[{"sku":"a"},{"sku":"b"}],"address":{"zip":"1000"}}`, "", ""},
		{"same key in sibling objects", `{"items":[{"sku":"a"},{"sku":"a"}],"address":{"zip":"1"},"labels":{"zip":"2"}}`, "", ""},
		{"map keys in any case", `{"labels":{"Env":"prod","team":"x"}}`, "", ""},
		{"free-form camelCase", `{"raw":{"clientDataJSON":"x","rawId":"y"},"any":{"kId":1}}`, "", ""},
		{"promoted field", `{"tenant_id":"t"}`, "", ""},
		{"nesting at limit", nest(31), "", ""},
		{"unicode values untouched", `{"slug":"ΣΑΣ","labels":{"ключ":"значение"}}`, "", ""},

		{"duplicate key", `{"slug":"t7","slug":"t8"}`, "slug", `duplicate key "slug"`},
		{"duplicate via escape", `{"slug":"t7","slu\u0067":"t8"}`, "slug", `duplicate key "slug"`},
		{"case duplicate", `{"slug":"t7","SLUG":"t8"}`, "SLUG", `keys "slug" and "SLUG" differ only in letter case`},
		{"case variant of field", `{"Slug":"t8"}`, "Slug", `key "Slug" must be spelled "slug"`},
		{"fold variant of field", `{"ſlug":"t8"}`, "ſlug", `must be spelled "slug"`},
		{"case variant of promoted field", `{"Tenant_ID":"t"}`, "Tenant_ID", `must be spelled "tenant_id"`},
		{"nested duplicate", `{"address":{"zip":"1","zip":"2"}}`, "address.zip", `duplicate key "zip"`},
		{"nested case variant", `{"address":{"ZIP":"2"}}`, "address.ZIP", `must be spelled "zip"`},
		{"duplicate in array element", `{"items":[{"sku":"a"},{"sku":"b","SKU":"c"}]}`, "items.SKU", "differ only in letter case"},
		{"map duplicate", `{"labels":{"env":"a","env":"b"}}`, "labels.env", `duplicate key "env"`},
		{"map case duplicate", `{"labels":{"Env":"a","env":"b"}}`, "labels.env", "differ only in letter case"},
		{"free-form duplicate", `{"raw":{"kid":1,"kid":2}}`, "raw.kid", `duplicate key "kid"`},
		{"free-form deep duplicate", `{"any":[[{"a":{"x":1,"X":2}}]]}`, "any.a.X", "differ only in letter case"},
		{"nesting over limit", nest(32), "", "more than 32 deep"},
		{"deep nesting", `{"any":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, "", "more than 32 deep"},
		{"deep objects", `{"any":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat("}", 40) + `}`, "", "more than 32 deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			var v keyed
			err := middleware.DecodeJSON(httptest.NewRecorder(), req, &v)
			if tt.wantField == "" && tt.wantMessage == "" {
				if err != nil {
					t.Fatalf("DecodeJSON(%s) = %v, want accepted", tt.body, err)
				}
				return
			}
			var te *tutela.Error
			if !errors.As(err, &te) || te.Code != tutela.EINVALID || te.Field != tt.wantField || !strings.Contains(te.Message, tt.wantMessage) {
				t.Fatalf("DecodeJSON(%.80s) = %#v, want invalid on field %q with %q", tt.body, err, tt.wantField, tt.wantMessage)
			}
		})
	}
}

// The key rules run before decoding, so a refused body leaves the target untouched: the last
// duplicate must not have been written into it.
func TestDecodeJSON_RefusedKeysLeaveTargetUnset(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest("POST", "/", strings.NewReader(`{"slug":"t7","SLUG":"t8"}`))
	req.Header.Set("Content-Type", "application/json")
	var v keyed
	if err := middleware.DecodeJSON(httptest.NewRecorder(), req, &v); err == nil || v.Slug != "" {
		t.Fatalf("err = %v, slug = %q; want an error and nothing decoded", err, v.Slug)
	}
}

// Malformed JSON is still reported by the decoder, with its offset, not swallowed by the key
// walk.
func TestDecodeJSON_KeyWalkLeavesSyntaxErrorsToDecoder(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		`{"slug":"a",}`:            "malformed JSON at offset 13",
		`{"slug":"a","any"`:        "truncated",
		`{"items":[{"sku":"a"}}`:   "malformed JSON",
		`{"slug":"a"}{"slug":"a"}`: "single JSON object",
		`{"raw":` + "[[[" + `}`:    "malformed JSON",
		`{"slug":"a","any":1e999`:  "truncated",
	} {
		req := httptest.NewRequest("POST", "/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		err := middleware.DecodeJSON(httptest.NewRecorder(), req, &keyed{})
		if tutela.ErrorCode(err) != tutela.EINVALID || !strings.Contains(tutela.ErrorMessage(err), want) {
			t.Errorf("DecodeJSON(%s) = %v, want invalid containing %q", body, err, want)
		}
	}
}
