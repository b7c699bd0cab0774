package intake

import (
	"io"
	"sync"
)

// chunkPipe carries the upload from the pump to the inspector like io.Pipe, but with a few
// chunks of slack: io.Pipe hands a write over only as fast as the reader takes it, so encrypting
// one chunk and inspecting the previous one would not overlap. Memory is bounded by depth
// copies of a chunk.
type chunkPipe struct {
	ch   chan []byte
	done chan struct{} // closed when the reader stops
	pool sync.Pool

	once    sync.Once
	werr    error // why the writer closed (nil: io.EOF to the reader); set before ch closes
	rerr    error // why the reader stopped; set before done closes
	cur     []byte
	curBuf  []byte
	closeMu sync.Mutex
	closed  bool
}

func newChunkPipe(depth, size int) *chunkPipe {
	p := &chunkPipe{ch: make(chan []byte, depth), done: make(chan struct{})}
	p.pool.New = func() any { b := make([]byte, 0, size); return &b }
	return p
}

// Write copies b and queues it for the reader; it blocks while depth chunks wait, and fails
// with the reader's error once the reader has stopped.
func (p *chunkPipe) Write(b []byte) (int, error) {
	bp := p.pool.Get().(*[]byte)
	buf := append((*bp)[:0], b...)
	select {
	case <-p.done:
		return 0, p.rerr
	default:
	}
	select {
	case p.ch <- buf:
		return len(b), nil
	case <-p.done:
		return 0, p.rerr
	}
}

// CloseWithError ends the stream: the reader gets err after what was queued (io.EOF for nil).
func (p *chunkPipe) CloseWithError(err error) {
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	p.werr = err
	close(p.ch)
}

// Read returns queued bytes in order, then the writer's close error.
func (p *chunkPipe) Read(b []byte) (int, error) {
	if len(p.cur) == 0 {
		if p.curBuf != nil {
			buf := p.curBuf[:0]
			p.pool.Put(&buf)
			p.curBuf = nil
		}
		next, ok := <-p.ch
		if !ok {
			if p.werr != nil {
				return 0, p.werr
			}
			return 0, io.EOF
		}
		p.cur, p.curBuf = next, next
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// CloseRead stops the reader: writers fail with err from now on.
func (p *chunkPipe) CloseRead(err error) {
	p.once.Do(func() {
		p.rerr = err
		close(p.done)
	})
}
