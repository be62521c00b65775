//! OpenTelemetry traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, every vttiro span at info or above is
//! exported over OTLP/HTTP with protobuf bodies, batched, and the W3C TraceContext
//! propagator is installed so requests and jobs continue their callers' traces.
//!
//! The standard variables are honoured: `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`
//! (the service is `vttiro` unless they name one), `OTEL_EXPORTER_OTLP_HEADERS`,
//! `_TIMEOUT` and `_COMPRESSION` (gzip), `OTEL_BSP_*` for batching, `OTEL_TRACES_SAMPLER`,
//! and `OTEL_SDK_DISABLED` / `OTEL_TRACES_EXPORTER=none` to switch export off. Only the
//! `http/protobuf` protocol is built in; gRPC would bring tonic and its TLS stack.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::resource::{EnvResourceDetector, ResourceDetector};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The exporter while the process runs; dropping it flushes the spans still batched.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        // A collector that is down cannot be helped at exit; the SDK bounds the wait by
        // the export timeout.
        let _ = self.provider.shutdown();
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Whether the environment asks for trace export.
fn requested() -> bool {
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"));
    !disabled
        && (var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            || var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some())
}

/// Refuses a protocol this build cannot speak, rather than sending protobuf to a gRPC port.
fn check_protocol(protocol: Option<&str>) -> Result<(), String> {
    match protocol.map(str::trim) {
        None | Some("http/protobuf") => Ok(()),
        Some(other) => Err(format!(
            "OTLP protocol {other:?} is not supported: this build exports traces over \
             http/protobuf only (unset OTEL_EXPORTER_OTLP_PROTOCOL or set it to http/protobuf)"
        )),
    }
}

/// `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT`, in milliseconds (10 s by default, as the
/// exporter itself reads it).
fn export_timeout() -> Duration {
    var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
        .or_else(|| var("OTEL_EXPORTER_OTLP_TIMEOUT"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(10))
}

fn resource() -> Resource {
    let builder = Resource::builder();
    let named = var("OTEL_SERVICE_NAME").is_some()
        || EnvResourceDetector::new()
            .detect()
            .get(&opentelemetry::Key::new("service.name"))
            .is_some();
    let builder = if named {
        builder
    } else {
        builder.with_service_name("vttiro")
    };
    builder
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Installs the exporter and the propagator when the environment asks for traces, and
/// returns the tracer for [`layer`]; `Ok(None)` when it does not.
pub fn from_env() -> Result<Option<(Telemetry, SdkTracer)>, String> {
    if !requested() {
        return Ok(None);
    }
    check_protocol(
        var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .as_deref(),
    )?;
    // Endpoint, headers, timeout and compression come from the environment.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(UreqClient::new(export_timeout()))
        .build()
        .map_err(|e| format!("OpenTelemetry exporter: {e}"))?;
    // The batch processor runs its own thread and reads OTEL_BSP_* itself.
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    opentelemetry::global::set_tracer_provider(provider.clone());
    let tracer = provider.tracer("vttiro");
    Ok(Some((Telemetry { provider }, tracer)))
}

/// The tracing layer that turns spans into OpenTelemetry spans. Its own filter (our crates
/// at info) makes it independent of the log filter, which is quieter by default.
pub fn layer<S>(tracer: SdkTracer) -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        // Stage spans are opened and closed, never entered: busy/idle times would read 0.
        .with_tracked_inactivity(false)
        .with_filter(Targets::new().with_target("vttiro", LevelFilter::INFO))
}

/// The exporter's transport: ureq, already in the build with rustls and ring, so export
/// adds no second HTTP stack. Blocking is fine here: the batch processor calls it on its
/// own thread.
#[derive(Debug)]
struct UreqClient {
    agent: ureq::Agent,
}

impl UreqClient {
    fn new(timeout: Duration) -> UreqClient {
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            // The exporter reads the status to decide on retries.
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .user_agent(format!("vttiro/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        UreqClient { agent }
    }
}

#[async_trait::async_trait]
impl HttpClient for UreqClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let response = self.agent.run(request.map(Vec::from))?;
        let (parts, mut body) = response.into_parts();
        // Collectors answer with a small protobuf; anything huge is not one.
        let bytes = body.with_config().limit(4 * 1024 * 1024).read_to_vec()?;
        Ok(Response::from_parts(parts, Bytes::from(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_protobuf_is_accepted() {
        assert!(check_protocol(None).is_ok());
        assert!(check_protocol(Some("http/protobuf")).is_ok());
        let refused = check_protocol(Some("grpc")).unwrap_err();
        assert!(refused.contains("http/protobuf"), "{refused}");
        assert!(check_protocol(Some("http/json")).is_err());
    }
}
