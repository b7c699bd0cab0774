package upstream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"tutela"
)

// Stream is a provider's streamed (server-sent events) answer. It is not safe for concurrent
// use; Close may be called from another goroutine to stop a Next that is waiting.
type Stream struct {
	KeyID    string
	Attempts int
	Header   http.Header

	ctx  context.Context
	a    *attempt
	body io.ReadCloser
	sc   *bufio.Scanner
	err  error // sticky: once Next fails or ends, it keeps answering so
}

// Stream is Do for a request with "stream": true. It retries like Do until a 2xx event stream
// arrives and returns it; from then on nothing is retried. Provider.TimeoutSeconds bounds the
// wait for the answer's headers and then for each event, so a long answer may take as long as
// it needs but a stalled one ends with upstream_timeout. The caller must Close the stream.
func (c *Client) Stream(ctx context.Context, t Target, path string, body []byte) (*Stream, error) {
	resp, a, err := c.send(ctx, t, path, body, true)
	if err != nil {
		return nil, err
	}
	// The caller may take a while before its first Next (writing its own headers); each
	// Next starts its own wait.
	a.timer.Stop()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), MaxEventBytes+2) // the line, and its CR LF
	return &Stream{KeyID: a.keyID, Attempts: a.attempts, Header: resp.Header, ctx: ctx, a: a, body: resp.Body, sc: sc}, nil
}

var done = []byte("[DONE]")

// Next returns the data of the next event (the text after "data:", one optional space removed,
// the lines of a multi-line event joined by "\n"), and io.EOF after "data: [DONE]" or at the
// end of the body. Comments, other fields and events without data are skipped, as the
// WHATWG event-stream rules say; an event left unfinished at the end of the body is dropped. A
// line or event longer than MaxEventBytes is an error. An {"error":…} object some providers
// send mid-stream is returned as data: the caller decides what it means.
func (s *Stream) Next() ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	s.a.timer.Reset(s.a.timeout)
	var data []byte
	has := false
	for s.sc.Scan() {
		line := s.sc.Bytes()
		if len(line) > MaxEventBytes {
			return nil, s.fail(tooLarge())
		}
		if len(line) == 0 {
			if !has {
				continue
			}
			if bytes.Equal(data, done) {
				return nil, s.fail(io.EOF)
			}
			s.a.timer.Stop()
			return data, nil
		}
		field, value, found := bytes.Cut(line, []byte(":"))
		if !found {
			value = nil
		}
		if len(field) == 0 || !bytes.Equal(field, []byte("data")) {
			continue // a comment, or event, id, retry: not used by OpenAI-style streams
		}
		value = bytes.TrimPrefix(value, []byte(" "))
		if has {
			data = append(data, '\n')
		}
		data = append(data, value...)
		has = true
		if len(data) > MaxEventBytes {
			return nil, s.fail(tooLarge())
		}
	}
	err := s.sc.Err()
	switch {
	case err == nil:
		return nil, s.fail(io.EOF)
	case errors.Is(err, bufio.ErrTooLong):
		return nil, s.fail(tooLarge())
	}
	return nil, s.fail(s.a.failure(s.ctx, err))
}

func tooLarge() error {
	return tutela.Errorf(tutela.EUPSTREAM, "the provider sent an event larger than %d MiB", MaxEventBytes>>20)
}

// fail records err as the answer of every later Next and releases the connection.
func (s *Stream) fail(err error) error {
	s.err = err
	s.release()
	return err
}

func (s *Stream) release() {
	s.a.finish()
	_ = s.body.Close()
}

// Close stops the stream and releases its connection. The rest of the answer is not read: the
// provider sees the connection close and stops generating.
func (s *Stream) Close() error {
	s.a.finish()
	return s.body.Close()
}
