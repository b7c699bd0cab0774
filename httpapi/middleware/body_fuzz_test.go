package middleware_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"reflect"
	"testing"

	"tutela"
	"tutela/httpapi/middleware"
)

// FuzzDecodeJSON: every JSON request body goes through DecodeJSON. It never panics; a refusal is
// a *tutela.Error with a client error code (never internal); what it accepts encodes back to
// JSON that it accepts again as the same value (nothing of the input is kept that the value does
// not hold).
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"name":"Ada","age":36,"admin":false,"address":{"zip":"75001"},"tags":["a","b"]}`,
		`{"name":"a","name":"b"}`,
		`{"Name":"a"}`,
		`{"nmae":"a"}`,
		`{"name":"a"}{"name":"b"}`,
		`[1,2]`,
		`{"address":{"zip":{"zip":{"zip":1}}}}`,
		` {"age":1e400}`,
		"{\"name\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	decode := func(body []byte) (person, error) {
		r := httptest.NewRequest("POST", "/v1/x", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var p person
		err := middleware.DecodeJSON(httptest.NewRecorder(), r, &p)
		return p, err
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := decode(body)
		if err != nil {
			var te *tutela.Error
			if !errors.As(err, &te) {
				t.Fatalf("refused with %T, not *tutela.Error: %v", err, err)
			}
			if c := tutela.ErrorCode(err); c != tutela.EINVALID && c != tutela.ETOOLARGE {
				t.Fatalf("refused with code %q: %v", c, err)
			}
			return
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("accepted value does not encode: %v", err)
		}
		q, err := decode(again)
		if err != nil || !reflect.DeepEqual(normalPerson(p), normalPerson(q)) {
			t.Fatalf("accepted %q as %+v, whose encoding %s decodes as %+v, %v", body, p, again, q, err)
		}
	})
}

// normalPerson makes an empty and a nil tags list equal (JSON null and [] both decode to empty).
func normalPerson(p person) person {
	if len(p.Tags) == 0 {
		p.Tags = nil
	}
	return p
}
