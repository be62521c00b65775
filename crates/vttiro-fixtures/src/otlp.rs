//! An OTLP/HTTP trace receiver for tests: it listens on 127.0.0.1, accepts
//! `POST /v1/traces` with protobuf bodies (gzip or not), answers as a collector would,
//! and keeps every span it was sent so a test can check the span tree a process exported.
//!
//! It serves until dropped; each connection gets a thread so an exporter's kept-alive
//! connection never holds up another.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;

/// Bodies beyond this are refused: an exporter batch is far smaller.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// How often idle threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// One span as received, ids in lowercase hex as W3C `traceparent` writes them.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// `None` for a root span.
    pub parent_span_id: Option<String>,
    /// OTLP's `SpanKind` number (2 = server).
    pub kind: i32,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    /// Attribute values as text (strings unquoted, arrays and maps in debug form).
    pub attributes: BTreeMap<String, String>,
    /// The `service.name` of the resource the span came with.
    pub service_name: Option<String>,
    /// The instrumentation scope's name.
    pub scope: String,
}

impl ReceivedSpan {
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }

    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Received {
    spans: Mutex<Vec<ReceivedSpan>>,
    requests: AtomicUsize,
}

/// A running receiver; dropping it stops it.
pub struct OtlpReceiver {
    endpoint: String,
    received: Arc<Received>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl OtlpReceiver {
    /// Binds a free port on 127.0.0.1 and starts serving.
    pub fn start() -> io::Result<OtlpReceiver> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let received = Arc::new(Received::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (received, stop) = (received.clone(), stop.clone());
            std::thread::Builder::new()
                .name("otlp-receiver".into())
                .spawn(move || accept(listener, &received, &stop))?
        };
        Ok(OtlpReceiver {
            endpoint,
            received,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`, the value for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.spans.lock().expect("spans lock").clone()
    }

    /// Export requests received so far, whatever their content.
    pub fn requests(&self) -> usize {
        self.received.requests.load(Ordering::SeqCst)
    }

    /// Waits until `done` holds for the spans received, and returns them; `Err` with the
    /// spans received so far once `timeout` has passed.
    pub fn wait_for(
        &self,
        done: impl Fn(&[ReceivedSpan]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<ReceivedSpan>, Vec<ReceivedSpan>> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return Ok(spans);
            }
            if Instant::now() >= deadline {
                return Err(spans);
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept(listener: TcpListener, received: &Arc<Received>, stop: &Arc<AtomicBool>) {
    let mut connections = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let (received, stop) = (received.clone(), stop.clone());
                connections.push(std::thread::spawn(move || {
                    // A broken connection only loses its own request.
                    let _ = serve(stream, &received, &stop);
                }));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
        connections.retain(|c: &JoinHandle<()>| !c.is_finished());
    }
    for connection in connections {
        let _ = connection.join();
    }
}

/// Answers requests on one connection until the client closes it or the receiver stops.
fn serve(stream: TcpStream, received: &Received, stop: &AtomicBool) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(POLL))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        // Wait for the next request's first byte, watching the stop flag meanwhile.
        match reader.fill_buf() {
            Ok([]) => return Ok(()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(10)))?;
        let request = read_request(&mut reader)?;
        reader.get_ref().set_read_timeout(Some(POLL))?;
        let (status, body) = respond(&request, received);
        write!(
            writer,
            "HTTP/1.1 {status}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )?;
        writer.write_all(&body)?;
        writer.flush()?;
    }
}

struct HttpRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(invalid("connection closed mid-request"));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn read_request(reader: &mut impl BufRead) -> io::Result<HttpRequest> {
    let line = read_line(reader)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    let mut request = HttpRequest {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let size = read_line(reader)?;
            let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| invalid("bad chunk size"))?;
            if request.body.len() + size > MAX_BODY {
                return Err(invalid("body too large"));
            }
            if size == 0 {
                // Trailers, then the blank line.
                while !read_line(reader)?.is_empty() {}
                break;
            }
            let start = request.body.len();
            request.body.resize(start + size, 0);
            reader.read_exact(&mut request.body[start..])?;
            read_line(reader)?;
        }
    } else if let Some(length) = request.header("content-length") {
        let length: usize = length.parse().map_err(|_| invalid("bad content-length"))?;
        if length > MAX_BODY {
            return Err(invalid("body too large"));
        }
        request.body.resize(length, 0);
        reader.read_exact(&mut request.body)?;
    }
    Ok(request)
}

fn respond(request: &HttpRequest, received: &Received) -> (&'static str, Vec<u8>) {
    if request.path != "/v1/traces" {
        return ("404 Not Found", Vec::new());
    }
    if request.method != "POST" {
        return ("405 Method Not Allowed", Vec::new());
    }
    received.requests.fetch_add(1, Ordering::SeqCst);
    let body = match request.header("content-encoding") {
        Some(e) if e.eq_ignore_ascii_case("gzip") => {
            let mut plain = Vec::new();
            let decoded = flate2::read::GzDecoder::new(request.body.as_slice())
                .take(MAX_BODY as u64)
                .read_to_end(&mut plain);
            if decoded.is_err() {
                return ("400 Bad Request", Vec::new());
            }
            plain
        }
        Some(e) if !e.eq_ignore_ascii_case("identity") => {
            return ("415 Unsupported Media Type", Vec::new())
        }
        _ => request.body.clone(),
    };
    let Ok(export) = ExportTraceServiceRequest::decode(body.as_slice()) else {
        return ("400 Bad Request", Vec::new());
    };
    let spans = flatten(export);
    received.spans.lock().expect("spans lock").extend(spans);
    (
        "200 OK",
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

fn flatten(export: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut spans = Vec::new();
    for resource_spans in export.resource_spans {
        let service_name = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .map(text);
        for scope_spans in resource_spans.scope_spans {
            let scope = scope_spans
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            for span in scope_spans.spans {
                spans.push(ReceivedSpan {
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: (!span.parent_span_id.is_empty())
                        .then(|| hex(&span.parent_span_id)),
                    kind: span.kind,
                    start_unix_nano: span.start_time_unix_nano,
                    end_unix_nano: span.end_time_unix_nano,
                    attributes: attributes(&span.attributes),
                    service_name: service_name.clone(),
                    scope: scope.clone(),
                });
            }
        }
    }
    spans
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(text).unwrap_or_default(),
            )
        })
        .collect()
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn export() -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("svc".into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        name: "work".into(),
                        trace_id: vec![0xab; 16],
                        span_id: vec![0x01; 8],
                        start_time_unix_nano: 10,
                        end_time_unix_nano: 25,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn post(agent: &ureq::Agent, endpoint: &str, body: &[u8], gzip: bool) -> u16 {
        let mut request = agent
            .post(&format!("{endpoint}/v1/traces"))
            .header("content-type", "application/x-protobuf");
        let body = if gzip {
            request = request.header("content-encoding", "gzip");
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(body).unwrap();
            encoder.finish().unwrap()
        } else {
            body.to_vec()
        };
        request.send(&body[..]).unwrap().status().as_u16()
    }

    #[test]
    fn receives_plain_and_gzipped_exports_over_one_kept_alive_connection() {
        let receiver = OtlpReceiver::start().unwrap();
        // One agent: its pooled connection carries all three requests.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let endpoint = receiver.endpoint();
        assert_eq!(post(&agent, endpoint, &export(), false), 200);
        assert_eq!(post(&agent, endpoint, &export(), true), 200);
        assert_eq!(post(&agent, endpoint, b"not protobuf \xff\xff", false), 400);
        let spans = receiver
            .wait_for(|s| s.len() == 2, Duration::from_secs(5))
            .unwrap();
        let span = &spans[0];
        assert_eq!(span.name, "work");
        assert_eq!(span.trace_id, "ab".repeat(16));
        assert_eq!(span.span_id, "0101010101010101");
        assert_eq!(span.parent_span_id, None);
        assert_eq!(span.duration_nanos(), 15);
        assert_eq!(span.service_name.as_deref(), Some("svc"));
        assert_eq!(receiver.requests(), 3);
    }
}
