//! W3C trace context across the service: an incoming `traceparent` becomes the parent of
//! the request's span, and a submitted job carries the request's `traceparent` so the
//! worker that runs it, in this process or another, continues the same trace.
//!
//! Only the OpenTelemetry API is used here, through the globally installed propagator:
//! the binary decides whether anything is exported. Without an installed propagator and
//! tracing layer every function here is a no-op.

use std::collections::HashMap;

use axum::http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct Carrier(HashMap<String, String>);

impl Extractor for Carrier {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
}

/// Makes the remote span context in `cx` the parent of `span`; anything else (no header,
/// a malformed one, no tracing layer) leaves `span` a root, as if no header was sent.
/// Must run before `span` is first entered.
fn adopt(span: &tracing::Span, cx: Context) {
    if cx.span().span_context().is_valid() {
        // Errors mean no OpenTelemetry layer sees this span: nothing to parent.
        let _ = span.set_parent(cx);
    }
}

/// Parents `span` on the request's `traceparent` (and `tracestate`) headers.
pub(crate) fn adopt_request_parent(span: &tracing::Span, headers: &HeaderMap) {
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    adopt(span, cx);
}

/// Parents `span` on a `traceparent` stored with a job.
pub(crate) fn adopt_traceparent(span: &tracing::Span, traceparent: &str) {
    let carrier = Carrier(HashMap::from([(
        TRACEPARENT.to_string(),
        traceparent.to_string(),
    )]));
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    adopt(span, cx);
}

/// The current span's `traceparent`, to store with a job it submits; `None` without a
/// valid trace context.
pub(crate) fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = Carrier(HashMap::new());
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    carrier.0.remove(TRACEPARENT)
}
