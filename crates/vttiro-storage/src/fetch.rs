//! Fetching media from a URL without becoming a proxy into the network it runs in
//! (server-side request forgery). The check sits in the name resolver ureq connects
//! through, so it covers every hop of a redirect chain and the address actually dialled —
//! a name that resolves to a public address when checked and a private one when used
//! (DNS rebinding) cannot slip through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::{StorageError, Store, StoredObject};

#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Addresses that may be fetched even though they are internal (a test server, a
    /// media host on the private network the operator trusts).
    pub allowed_addresses: Vec<IpAddr>,
    /// Lets every internal address through; for local use only.
    pub allow_internal: bool,
    pub max_bytes: u64,
    /// For the whole fetch, redirects and body included.
    pub timeout: Duration,
    pub max_redirects: u32,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            allowed_addresses: Vec::new(),
            allow_internal: false,
            max_bytes: 2 * 1024 * 1024 * 1024,
            timeout: Duration::from_secs(600),
            max_redirects: 5,
        }
    }
}

/// Why an address is not one to fetch from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    Private,
    LinkLocal,
    /// Cloud metadata services (169.254.169.254, fd00:ec2::254, ...).
    Metadata,
    Unspecified,
    Multicast,
    /// Shared, documentation, benchmarking, reserved and similar special-purpose ranges.
    Reserved,
}

impl AddressClass {
    fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "a public address",
            AddressClass::Loopback => "a loopback address",
            AddressClass::Private => "a private-network address",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::Metadata => "a cloud metadata address",
            AddressClass::Unspecified => "the unspecified address",
            AddressClass::Multicast => "a multicast address",
            AddressClass::Reserved => "a reserved special-purpose address",
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
        AddressClass::Metadata
    } else if ip.is_unspecified() || a == 0 {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_private() {
        AddressClass::Private
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if (a == 100 && (64..128).contains(&b))   // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0)               // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)               // documentation
        || (a == 198 && (b == 18 || b == 19))           // benchmarking
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 240
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

/// Which kind of address `ip` is; IPv4-mapped and NAT64 IPv6 addresses are judged by the
/// IPv4 address inside them.
pub fn classify_address(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify_v4(v4);
            }
            let segments = v6.segments();
            // NAT64 (64:ff9b::/96) embeds an IPv4 address in the last 32 bits.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [_, _, _, _, _, _, hi, lo] = segments;
                return classify_v4(Ipv4Addr::new(
                    (hi >> 8) as u8,
                    hi as u8,
                    (lo >> 8) as u8,
                    lo as u8,
                ));
            }
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                AddressClass::Metadata
            } else if v6.is_unspecified() {
                AddressClass::Unspecified
            } else if v6.is_loopback() {
                AddressClass::Loopback
            } else if segments[0] & 0xfe00 == 0xfc00 {
                AddressClass::Private
            } else if segments[0] & 0xffc0 == 0xfe80 {
                AddressClass::LinkLocal
            } else if v6.is_multicast() {
                AddressClass::Multicast
            } else if segments[0] == 0x2001 && segments[1] == 0xdb8 {
                AddressClass::Reserved
            } else {
                AddressClass::Public
            }
        }
    }
}

/// A resolver that drops every address the policy does not allow and remembers why.
#[derive(Debug)]
struct GuardedResolver {
    inner: DefaultResolver,
    allowed: Vec<IpAddr>,
    allow_internal: bool,
    refused: Arc<Mutex<Option<String>>>,
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let resolved = self.inner.resolve(uri, config, timeout)?;
        let mut kept = self.inner.empty();
        let mut refusal = None;
        for address in resolved.iter() {
            let class = classify_address(address.ip());
            if class == AddressClass::Public
                || self.allow_internal
                || self.allowed.contains(&address.ip())
            {
                kept.push(*address);
            } else if refusal.is_none() {
                refusal = Some(format!(
                    "{} resolves to {}, {}",
                    uri.host().unwrap_or_default(),
                    address.ip(),
                    class.describe()
                ));
            }
        }
        if kept.is_empty() {
            *self.refused.lock().expect("refusal lock") = refusal;
            return Err(ureq::Error::HostNotFound);
        }
        Ok(kept)
    }
}

/// Why the last request through a [`guarded_agent`] was refused, if it was.
#[derive(Debug, Clone, Default)]
pub struct Refusal(Arc<Mutex<Option<String>>>);

impl Refusal {
    /// The reason an address was refused (the request then fails as "host not found").
    pub fn take(&self) -> Option<String> {
        self.0.lock().expect("refusal lock").take()
    }
}

/// An HTTP agent that connects only to addresses `policy` allows, re-checked on every
/// redirect hop, for anything that calls URLs users supply (media, webhooks).
pub fn guarded_agent(policy: &FetchPolicy, max_redirects: u32) -> (ureq::Agent, Refusal) {
    let refusal = Refusal::default();
    let resolver = GuardedResolver {
        inner: DefaultResolver::default(),
        allowed: policy.allowed_addresses.clone(),
        allow_internal: policy.allow_internal,
        refused: refusal.0.clone(),
    };
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    let config = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .max_redirects(max_redirects)
        .timeout_global(Some(policy.timeout))
        .user_agent(format!("vttiro/{}", env!("CARGO_PKG_VERSION")))
        .build();
    (
        ureq::Agent::with_parts(config, DefaultConnector::new(), resolver),
        refusal,
    )
}

/// Downloads `url` into `key` of `store` under `policy`; the body must be media.
pub fn fetch(
    store: &Store,
    key: &str,
    url: &str,
    policy: &FetchPolicy,
) -> Result<StoredObject, StorageError> {
    let refused = |reason: String| StorageError::UrlRefused {
        url: url.to_string(),
        reason,
    };
    let failed = |reason: String| StorageError::FetchFailed {
        url: url.to_string(),
        reason,
    };
    let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("http") | Some("https")) {
        return Err(refused(format!(
            "scheme {} is not allowed (http and https only)",
            scheme.as_deref().unwrap_or("(none)")
        )));
    }
    let uri: ureq::http::Uri = url.parse().map_err(|_| refused("not a valid URL".into()))?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(refused("credentials in URLs are not accepted".into()));
    }
    let (agent, refusal) = guarded_agent(policy, policy.max_redirects);
    let mut response = match agent.get(url).call() {
        Ok(response) => response,
        Err(e) => {
            if let Some(reason) = refusal.take() {
                return Err(refused(reason));
            }
            return Err(failed(match e {
                ureq::Error::Timeout(_) => format!("no answer within {:?}", policy.timeout),
                ureq::Error::TooManyRedirects => {
                    format!("more than {} redirects", policy.max_redirects)
                }
                other => other.to_string(),
            }));
        }
    };
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(failed(format!("the server answered HTTP {status}")));
    }
    let declared: Option<u64> = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > policy.max_bytes) {
        return Err(StorageError::TooLarge {
            what: url.to_string(),
            limit: policy.max_bytes,
        });
    }
    let mut reader = response
        .body_mut()
        .with_config()
        .limit(policy.max_bytes.saturating_add(1))
        .reader();
    store
        .put_media(key, &mut reader, policy.max_bytes)
        .map_err(|e| match e {
            StorageError::SourceFailed { reason, .. } => {
                failed(format!("the download failed: {reason}"))
            }
            StorageError::TooLarge { limit, .. } => StorageError::TooLarge {
                what: url.to_string(),
                limit,
            },
            StorageError::NotMedia(_) => StorageError::NotMedia(url.to_string()),
            other => other,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> AddressClass {
        classify_address(text.parse().unwrap())
    }

    #[test]
    fn internal_ranges_are_recognised_in_both_families() {
        assert_eq!(class("127.0.0.1"), AddressClass::Loopback);
        assert_eq!(class("127.8.9.10"), AddressClass::Loopback);
        assert_eq!(class("10.1.2.3"), AddressClass::Private);
        assert_eq!(class("172.31.255.1"), AddressClass::Private);
        assert_eq!(class("192.168.0.10"), AddressClass::Private);
        assert_eq!(class("169.254.169.254"), AddressClass::Metadata);
        assert_eq!(class("169.254.10.1"), AddressClass::LinkLocal);
        assert_eq!(class("100.64.0.1"), AddressClass::Reserved);
        assert_eq!(class("0.0.0.0"), AddressClass::Unspecified);
        assert_eq!(class("224.0.0.1"), AddressClass::Multicast);
        assert_eq!(class("::1"), AddressClass::Loopback);
        assert_eq!(class("::ffff:127.0.0.1"), AddressClass::Loopback);
        assert_eq!(class("::ffff:10.0.0.1"), AddressClass::Private);
        assert_eq!(class("64:ff9b::a9fe:a9fe"), AddressClass::Metadata);
        assert_eq!(class("fd00:ec2::254"), AddressClass::Metadata);
        assert_eq!(class("fd12:3456::1"), AddressClass::Private);
        assert_eq!(class("fe80::1"), AddressClass::LinkLocal);
        assert_eq!(class("8.8.8.8"), AddressClass::Public);
        assert_eq!(class("2606:4700::1111"), AddressClass::Public);
        assert_eq!(class("172.32.0.1"), AddressClass::Public);
    }
}
