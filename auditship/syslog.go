package auditship

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/tlog"

	"tutela/audit"
	"tutela/syslog"
)

// Syslog ships batches as RFC 5424 messages over TLS (RFC 5425, package syslog) to a collector
// (rsyslog, syslog-ng, a SIEM). A batch is one message per entry (MSGID "audit-entry", the
// canonical JSON as MSG, so the SIEM can search it) followed by one message that closes it
// (MSGID "audit-batch": the range, the proofs, the signed checkpoint as MSG). Syslog has no
// acknowledgement: the cursor moves once the messages were written to the TLS connection, and
// a batch interrupted by a failure is sent again whole, so a collector may hold an entry twice —
// the same index with the same content. BatchesFromSyslog rebuilds the batches from what a
// collector kept, for a receiver (audit/receiver.Store) to verify as if they came over HTTPS;
// it drops repeats by index.
type Syslog struct {
	name string
	c    syslogSender
	now  func() time.Time
}

type syslogSender interface {
	Send(ctx context.Context, m syslog.Message) error
}

// Structured data of shipping messages. 32473 is the private enterprise number RFC 5612
// reserves for documentation; the other Tutela messages use it too.
const (
	SyslogSDID            = "tutela-audit@32473"
	SyslogMsgIDEntry      = "audit-entry"
	SyslogMsgIDCheckpoint = "audit-batch"
)

// syslogChunk bounds the content carried by one message, under syslog.MaxMessageLen with room
// for the header and structured data; a longer entry (up to audit.MaxCanonicalSize) is split.
const syslogChunk = 48 << 10

// NewSyslog returns the destination name sending with c (made by syslog.New; TLS verified).
func NewSyslog(name string, c *syslog.Client, now func() time.Time) *Syslog {
	if now == nil {
		now = time.Now
	}
	return &Syslog{name: name, c: c, now: now}
}

// Name implements Destination.
func (s *Syslog) Name() string { return s.name }

// Send implements Destination: a nil Reply on success (delivery is the acknowledgement).
func (s *Syslog) Send(ctx context.Context, b *audit.Batch) (*Reply, error) {
	now := s.now().UTC()
	msg := func(id string, params []syslog.Param, text string) syslog.Message {
		return syslog.Message{Facility: syslog.FacilityAudit, Severity: syslog.SevInfo, Time: now, MsgID: id,
			Data: []syslog.Element{{ID: SyslogSDID, Params: params}}, Msg: text}
	}
	for _, e := range b.Entries {
		if !utf8.Valid(e.Canonical) {
			return nil, fmt.Errorf("entry %d: content is not UTF-8 (run tutela audit verify)", e.Index)
		}
		base := []syslog.Param{{Name: "index", Value: strconv.FormatInt(e.Index, 10)}, {Name: "event_id", Value: e.EventID},
			{Name: "leaf_hash", Value: base64.StdEncoding.EncodeToString(e.LeafHash[:])}}
		if e.Pruned {
			base = append(base, syslog.Param{Name: "pruned", Value: "true"})
		}
		parts := chunks(string(e.Canonical), syslogChunk)
		for i, p := range parts {
			params := base
			if len(parts) > 1 {
				params = append(params[:len(params):len(params)], syslog.Param{Name: "part", Value: fmt.Sprintf("%d/%d", i+1, len(parts))})
			}
			if err := s.c.Send(ctx, msg(SyslogMsgIDEntry, params, p)); err != nil {
				return nil, err
			}
		}
	}
	params := []syslog.Param{{Name: "origin", Value: b.Origin}, {Name: "from", Value: strconv.FormatInt(b.From, 10)},
		{Name: "count", Value: strconv.Itoa(len(b.Entries))}, {Name: "tail_proof", Value: joinHashes(b.TailProof)},
		{Name: "prev_size", Value: strconv.FormatInt(b.PrevSize, 10)}, {Name: "prev_proof", Value: joinHashes(b.PrevProof)}}
	if err := s.c.Send(ctx, msg(SyslogMsgIDCheckpoint, params, b.Checkpoint)); err != nil {
		return nil, err
	}
	return nil, nil
}

// chunks splits s into pieces of at most n bytes on rune boundaries ("" is one empty piece: a
// pruned entry has no content).
func chunks(s string, n int) []string {
	var out []string
	for len(s) > n {
		i := n
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	return append(out, s)
}

func joinHashes(hs []tlog.Hash) string {
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return strings.Join(parts, ",")
}

func splitHashes(s string) ([]tlog.Hash, error) {
	if s == "" {
		return nil, nil
	}
	var out []tlog.Hash
	for p := range strings.SplitSeq(s, ",") {
		b, err := base64.StdEncoding.Strict().DecodeString(p)
		if err != nil || len(b) != tlog.HashSize {
			return nil, errors.New("bad hash")
		}
		out = append(out, tlog.Hash(b))
	}
	return out, nil
}

// BatchesFromSyslog rebuilds shipped batches, in the order their closing messages arrived, from
// the messages a collector kept (others are ignored). An entry sent several times (a batch sent
// again after a failure) is taken once, by index. Malformed shipping messages are an error
// naming the message; what the batches prove is for audit.VerifyBatch (receiver.Store.Apply).
func BatchesFromSyslog(msgs []syslog.Message) ([]*audit.Batch, error) {
	type entry struct {
		e     audit.BatchEntry
		parts []string
	}
	entries := map[int64]*entry{}
	var out []*audit.Batch
	for n, m := range msgs {
		var params map[string]string
		for _, el := range m.Data {
			if el.ID == SyslogSDID {
				params = map[string]string{}
				for _, p := range el.Params {
					params[p.Name] = p.Value
				}
			}
		}
		if params == nil {
			continue
		}
		bad := func(what string) error { return fmt.Errorf("syslog message %d (%s): %s", n, m.MsgID, what) }
		switch m.MsgID {
		case SyslogMsgIDEntry:
			index, err := strconv.ParseInt(params["index"], 10, 64)
			if err != nil || index < 0 {
				return nil, bad("bad index")
			}
			leaf, err := splitHashes(params["leaf_hash"])
			if err != nil || len(leaf) != 1 {
				return nil, bad("bad leaf hash")
			}
			part, parts := 1, 1
			if p := params["part"]; p != "" {
				a, b, _ := strings.Cut(p, "/")
				x, err1 := strconv.Atoi(a)
				y, err2 := strconv.Atoi(b)
				if err1 != nil || err2 != nil || x < 1 || x > y || y > audit.MaxCanonicalSize/syslogChunk+2 {
					return nil, bad("bad part")
				}
				part, parts = x, y
			}
			cur := entries[index]
			if cur == nil || part == 1 {
				cur = &entry{e: audit.BatchEntry{Index: index, EventID: params["event_id"], LeafHash: leaf[0],
					Pruned: params["pruned"] == "true"}, parts: make([]string, parts)}
				entries[index] = cur
			}
			if len(cur.parts) != parts {
				return nil, bad("parts disagree")
			}
			cur.parts[part-1] = m.Msg
		case SyslogMsgIDCheckpoint:
			from, err1 := strconv.ParseInt(params["from"], 10, 64)
			count, err2 := strconv.Atoi(params["count"])
			prevSize, err3 := strconv.ParseInt(params["prev_size"], 10, 64)
			tail, err4 := splitHashes(params["tail_proof"])
			prev, err5 := splitHashes(params["prev_proof"])
			if err := errors.Join(err1, err2, err3, err4, err5); err != nil || from < 0 || count < 1 || count > audit.MaxBatchEntries {
				return nil, bad("bad batch parameters")
			}
			b := &audit.Batch{Format: audit.BatchFormat, Origin: params["origin"], From: from, Checkpoint: m.Msg,
				TailProof: tail, PrevSize: prevSize, PrevProof: prev}
			for i := from; i < from+int64(count); i++ {
				e, ok := entries[i]
				if !ok {
					continue // the receiver names the missing index
				}
				be := e.e
				if c := strings.Join(e.parts, ""); c != "" {
					be.Canonical = []byte(c)
				}
				b.Entries = append(b.Entries, be)
			}
			out = append(out, b)
		}
	}
	return out, nil
}
