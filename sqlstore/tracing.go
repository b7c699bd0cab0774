package sqlstore

import (
	"context"
	"runtime"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"tutela"
	"tutela/tracing"
)

// SetTracer makes every transaction a span of tp (Options.Tracer does it at Open). Only the
// operation (the function that asked for the transaction), the dialect, whether it was
// read-only and, on failure, the error code are recorded: never SQL, its parameters or an error
// message, which can quote a value (a unique violation names the duplicate).
func (db *DB) SetTracer(tp trace.TracerProvider) {
	if tracing.IsOff(tp) {
		db.tracer = nil
		return
	}
	db.tracer = tp.Tracer("tutela/sqlstore")
}

// untracedKey marks a context whose transactions get no span: the authentication-state
// watcher's polls (four a second on every node, and one after each local change), which would
// bury the traces that matter and, started inside a request, land in its trace.
type untracedKey struct{}

// untraced returns ctx with its transactions left out of tracing.
func untraced(ctx context.Context) context.Context {
	return context.WithValue(ctx, untracedKey{}, true)
}

// dbSystem is the OpenTelemetry db.system.name of the dialect.
func (db *DB) dbSystem() string {
	if db.dialect == Postgres {
		return "postgresql"
	}
	return "sqlite"
}

// startTxSpan starts the span of one transaction; end it with endTxSpan.
func (db *DB) startTxSpan(ctx context.Context, readOnly bool) (context.Context, trace.Span) {
	ctx, span := db.tracer.Start(ctx, "sqlstore.tx", trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		op := txOperation()
		span.SetName(op)
		span.SetAttributes(attribute.String("db.system.name", db.dbSystem()), attribute.String("db.operation.name", op),
			attribute.Bool("tutela.db.read_only", readOnly))
	}
	return ctx, span
}

func endTxSpan(span trace.Span, err error) {
	if err != nil {
		code := tutela.ErrorCode(err)
		span.SetAttributes(attribute.String("tutela.error_code", code))
		span.SetStatus(codes.Error, code)
	}
	span.End()
}

// txWrappers are the store's own frames between a caller and its transaction.
var txWrappers = []string{"tutela/sqlstore.(*DB).run", "tutela/sqlstore.(*DB).Update", "tutela/sqlstore.(*DB).View",
	"tutela/sqlstore.(*DB).viewKeys", "tutela/sqlstore.(*DB).startTxSpan", "tutela/sqlstore.txOperation"}

// txOperation names the function that opened the transaction ("sqlstore.(*DB).CreateSession",
// "identity.(*Service).Login.func2"): what a span of a transaction is called. It walks the
// stack, so it runs only for recorded spans.
func txOperation() string {
	var pcs [12]uintptr
	frames := runtime.CallersFrames(pcs[:runtime.Callers(1, pcs[:])])
	for {
		f, more := frames.Next()
		if !isTxWrapper(f.Function) {
			return strings.TrimPrefix(f.Function, "tutela/")
		}
		if !more {
			return "sqlstore.tx"
		}
	}
}

func isTxWrapper(fn string) bool {
	for _, w := range txWrappers {
		if fn == w {
			return true
		}
	}
	return false
}
