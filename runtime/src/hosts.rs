//! HTTP host patterns: parsing, matching on dot boundaries, and intersecting what a pack
//! asks for with what the host grants.
//!
//! A pattern is an exact host name (`api.example.com`), a wildcard over subdomains
//! (`*.example.com`), or `*`, any host (as in Extism manifests). The subdomain wildcard
//! matches one or more whole labels in front of the suffix, so it never matches
//! `example.com` itself nor `evilexample.com`. Nothing else is a pattern: no wildcard inside
//! a label, no ports or schemes. Whatever a pattern allows, the address rules of the HTTP
//! capability (no private, loopback or metadata addresses without an opt-in) still apply.

use std::fmt;

/// One parsed host pattern, lowercased.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum HostPattern {
    /// Exactly this host.
    Exact(String),
    /// Any host that ends in `.` followed by this suffix.
    Subdomains(String),
    /// Any host at all: `*`.
    Any,
}

impl HostPattern {
    /// Parses `api.example.com`, `*.example.com` or `*`.
    ///
    /// # Errors
    /// A short reason, for the caller to wrap in its own error kind.
    pub fn parse(text: &str) -> Result<HostPattern, &'static str> {
        let lower = text.trim().to_ascii_lowercase();
        if lower == "*" {
            return Ok(HostPattern::Any);
        }
        let (wildcard, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        if name.is_empty() {
            return Err("is empty");
        }
        for label in name.split('.') {
            let valid = !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !valid {
                return Err("is not a host name, a *.suffix pattern or *");
            }
        }
        if wildcard && !name.contains('.') {
            return Err("would match a whole top-level domain");
        }
        let name = name.to_string();
        Ok(if wildcard {
            HostPattern::Subdomains(name)
        } else {
            HostPattern::Exact(name)
        })
    }

    /// True when `host` (a bare host name, any case) is allowed by this pattern.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(name) => host == *name,
            // An IP address has no subdomains: `*.0.0.1` must not match `127.0.0.1`.
            HostPattern::Subdomains(_) if host.parse::<std::net::IpAddr>().is_ok() => false,
            HostPattern::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|front| front.len() > 1 && front.ends_with('.')),
        }
    }

    /// The pattern that allows exactly the hosts both allow, if any.
    pub fn intersect(&self, other: &HostPattern) -> Option<HostPattern> {
        use HostPattern::*;
        match (self, other) {
            (Any, _) => Some(other.clone()),
            (_, Any) => Some(self.clone()),
            (Exact(a), Exact(b)) => (a == b).then(|| self.clone()),
            (Exact(a), Subdomains(_)) => other.matches(a).then(|| self.clone()),
            (Subdomains(_), Exact(b)) => self.matches(b).then(|| other.clone()),
            (Subdomains(a), Subdomains(b)) => {
                if a == b || self_is_within(a, b) {
                    Some(self.clone())
                } else if self_is_within(b, a) {
                    Some(other.clone())
                } else {
                    None
                }
            }
        }
    }
}

/// True when every subdomain of `inner` is also a subdomain of `outer`.
fn self_is_within(inner: &str, outer: &str) -> bool {
    inner
        .strip_suffix(outer)
        .is_some_and(|front| front.ends_with('.'))
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Subdomains(suffix) => write!(f, "*.{suffix}"),
            HostPattern::Any => f.write_str("*"),
        }
    }
}

/// The hosts a pack may reach: every pattern the pack asks for intersected with every
/// pattern the host grants, deduplicated. Unparseable entries were rejected earlier, at
/// manifest and options validation, so they are skipped here.
pub fn effective_hosts(requested: &[String], granted: &[String]) -> Vec<HostPattern> {
    let parse_all = |list: &[String]| -> Vec<HostPattern> {
        list.iter()
            .filter_map(|text| HostPattern::parse(text).ok())
            .collect()
    };
    let granted = parse_all(granted);
    let mut allowed: Vec<HostPattern> = parse_all(requested)
        .iter()
        .flat_map(|asked| granted.iter().filter_map(|grant| asked.intersect(grant)))
        .collect();
    allowed.sort();
    allowed.dedup();
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> HostPattern {
        HostPattern::parse(text).unwrap()
    }

    #[test]
    fn wildcard_matches_on_dot_boundaries_only() {
        let p = pattern("*.example.com");
        assert!(p.matches("api.example.com"));
        assert!(p.matches("a.b.example.com"));
        assert!(p.matches("API.Example.COM"));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("evilexample.com"));
        assert!(!p.matches(".example.com"));
        assert!(!p.matches("example.com.evil.net"));
    }

    #[test]
    fn a_wildcard_never_matches_an_ip_address() {
        assert!(!pattern("*.0.0.1").matches("127.0.0.1"));
        assert!(pattern("127.0.0.1").matches("127.0.0.1"));
    }

    #[test]
    fn exact_matches_only_itself() {
        let p = pattern("api.example.com");
        assert!(p.matches("api.example.com"));
        assert!(!p.matches("v2.api.example.com"));
    }

    #[test]
    fn a_bare_star_matches_any_host_and_narrows_to_the_other_side() {
        let any = pattern("*");
        assert!(any.matches("api.example.com"));
        assert!(any.matches("203.0.113.7"));
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let eff = |asked: &[&str], granted: &[&str]| -> Vec<String> {
            effective_hosts(&own(asked), &own(granted))
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(eff(&["*"], &["*.stripe.com"]), ["*.stripe.com"]);
        assert_eq!(eff(&["api.stripe.com"], &["*"]), ["api.stripe.com"]);
        assert_eq!(eff(&["*"], &["*"]), ["*"]);
    }

    #[test]
    fn malformed_patterns_are_rejected() {
        for bad in [
            "",
            "**",
            "*.com",
            "*example.com",
            "api.*.com",
            "a..b",
            "http://x.com",
            "x.com:443",
            "-a.com",
        ] {
            assert!(
                HostPattern::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn intersection_keeps_the_narrower_side() {
        let eff = |asked: &[&str], granted: &[&str]| -> Vec<String> {
            let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            effective_hosts(&own(asked), &own(granted))
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            eff(&["api.stripe.com"], &["*.stripe.com"]),
            ["api.stripe.com"]
        );
        assert_eq!(
            eff(&["*.stripe.com"], &["api.stripe.com"]),
            ["api.stripe.com"]
        );
        assert_eq!(
            eff(&["*.stripe.com"], &["*.api.stripe.com"]),
            ["*.api.stripe.com"]
        );
        assert_eq!(eff(&["*.stripe.com"], &["*.stripe.com"]), ["*.stripe.com"]);
        assert!(eff(&["api.stripe.com"], &["api.openai.com"]).is_empty());
        assert!(eff(&["*.stripe.com"], &["evilstripe.com"]).is_empty());
        assert!(
            eff(&[], &["*.stripe.com"]).is_empty(),
            "a pack that asks nothing gets nothing"
        );
        assert!(
            eff(&["api.stripe.com"], &[]).is_empty(),
            "a host that grants nothing grants nothing"
        );
    }
}
