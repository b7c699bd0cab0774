package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"tutela/httpapi"
)

// checkedServer is the server every httpapi test talks to. Each exchange is checked against
// the published OpenAPI document, so the document cannot drift from what the server does: a
// status the operation does not document, a body or header that breaks its schema, or a 2xx
// answer to a request the document calls invalid fails the test that made the call.
type checkedServer struct {
	*httpapi.Server
	t testing.TB // nil: no checks (benchmarks)
}

var openAPIDoc = sync.OnceValues(func() (routers.Router, error) {
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI())
	if err != nil {
		return nil, err
	}
	// Requests in tests go to http://example.com; the document's server is relative.
	doc.Servers = openapi3.Servers{{URL: "http://example.com"}}
	return legacy.NewRouter(doc)
})

func (s checkedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.t == nil {
		s.Server.ServeHTTP(w, r)
		return
	}
	var reqBody []byte
	if r.Body != nil {
		reqBody, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	rec := httptest.NewRecorder()
	s.Server.ServeHTTP(rec, r)
	if err := checkExchange(r, reqBody, rec); err != nil {
		s.t.Errorf("OpenAPI: %s %s → %d: %v", r.Method, r.URL.RequestURI(), rec.Code, err)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func checkExchange(r *http.Request, reqBody []byte, rec *httptest.ResponseRecorder) error {
	router, err := openAPIDoc()
	if err != nil {
		return err
	}
	// A fresh copy of the request: the handler consumed the original body.
	req := r.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	req.URL.Scheme, req.URL.Host = "http", "example.com"
	if req.Method == http.MethodHead {
		req.Method = http.MethodGet // HEAD is GET without the body on the wire
	}
	route, params, err := router.FindRoute(req)
	if p := req.URL.EscapedPath(); err != nil || path.Clean(p) != p {
		// The router would clean /v1/tenants//users into a documented path; the server may not.
		// No documented operation: the answer must be the documented error shape.
		return checkErrorBody(rec)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if reqErr := openapi3filter.ValidateRequest(context.Background(), in); reqErr != nil {
		// A request the document calls invalid must be refused, with the error shape; which
		// 4xx depends on what the server checks first.
		if rec.Code < 400 {
			return &acceptedInvalid{err: reqErr}
		}
		if validateResponse(in, rec) == nil {
			return nil
		}
		return checkErrorBody(rec)
	}
	return validateResponse(in, rec)
}

func validateResponse(in *openapi3filter.RequestValidationInput, rec *httptest.ResponseRecorder) error {
	return openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: rec.Code, Header: rec.Header(),
		Body: io.NopCloser(bytes.NewReader(rec.Body.Bytes())), Options: in.Options,
	})
}

type acceptedInvalid struct{ err error }

func (e *acceptedInvalid) Error() string {
	return "the server accepted a request the document calls invalid: " + e.err.Error()
}

// checkErrorBody checks an answer outside every documented operation: a JSON error with a
// status in 4xx.
func checkErrorBody(rec *httptest.ResponseRecorder) error {
	var body struct {
		Error struct{ Code, Message, RequestID string } `json:"error"`
	}
	if rec.Code < 400 || rec.Code >= 500 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") ||
		json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Error.Code == "" {
		return &undocumented{status: rec.Code, body: rec.Body.String()}
	}
	return nil
}

type undocumented struct {
	status int
	body   string
}

func (e *undocumented) Error() string {
	return "an undocumented path answered other than a JSON 4xx error: " + e.body
}
