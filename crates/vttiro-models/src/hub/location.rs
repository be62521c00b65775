//! Redirect targets and origins. The hub answers `resolve` with relative (`/api/resolve-cache/…`)
//! and absolute (CDN) locations; credentials must only ever go back to the hub's own origin.

use ureq::http::Uri;

/// The absolute URL a `Location` header points to, relative to the URL that answered.
pub(crate) fn join_location(base: &str, location: &str) -> Result<String, String> {
    let location = location.trim();
    if has_http_scheme(location) {
        return Ok(location.to_owned());
    }
    let base_uri: Uri = base
        .parse()
        .map_err(|error| format!("cannot parse URL {base}: {error}"))?;
    let scheme = base_uri
        .scheme_str()
        .ok_or_else(|| format!("URL {base} has no scheme"))?;
    let authority = base_uri
        .authority()
        .ok_or_else(|| format!("URL {base} has no host"))?;
    if let Some(rest) = location.strip_prefix("//") {
        return Ok(format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Ok(format!("{scheme}://{authority}{location}"));
    }
    let base_path = base_uri.path();
    let directory = &base_path[..=base_path.rfind('/').unwrap_or(0)];
    let directory = if directory.is_empty() { "/" } else { directory };
    Ok(format!("{scheme}://{authority}{directory}{location}"))
}

fn has_http_scheme(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// `scheme://host:port` in lowercase, or `None` when `url` is not absolute.
pub(crate) fn origin(url: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let host = uri.host()?.to_ascii_lowercase();
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    Some(format!("{scheme}://{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_answering_url() {
        let base = "https://huggingface.co/org/repo/resolve/main/model.bin?x=1";
        assert_eq!(
            join_location(base, "https://cdn.example/a").unwrap(),
            "https://cdn.example/a"
        );
        assert_eq!(
            join_location(base, "//cdn.example/b").unwrap(),
            "https://cdn.example/b"
        );
        assert_eq!(
            join_location(base, "/api/resolve-cache/c").unwrap(),
            "https://huggingface.co/api/resolve-cache/c"
        );
        assert_eq!(
            join_location(base, "other.bin").unwrap(),
            "https://huggingface.co/org/repo/resolve/main/other.bin"
        );
    }

    #[test]
    fn origins_include_default_ports() {
        assert_eq!(
            origin("https://HuggingFace.co/x"),
            origin("https://huggingface.co:443/y")
        );
        assert_ne!(
            origin("https://huggingface.co/x"),
            origin("https://cdn-lfs.huggingface.co/x")
        );
        assert_ne!(
            origin("http://127.0.0.1:8000/x"),
            origin("http://127.0.0.1:8001/x")
        );
    }
}
