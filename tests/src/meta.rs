//! Object metadata the server owns: timestamps, uids, generated names, and
//! the name rules Kubernetes enforces.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

/// RFC 3339 UTC with second precision, as `metav1.Time` serialises.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn now() -> String {
    rfc3339(SystemTime::now())
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp (`...Z`).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

/// A random version-4 UUID.
pub fn new_uid() -> String {
    let b: [u8; 16] = rand::rng().random();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
        u16::from_be_bytes([b[6], b[7]]) & 0x0fff,
        (u16::from_be_bytes([b[8], b[9]]) & 0x3fff) | 0x8000,
        u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]])
    )
}

/// The 5-character suffix `generateName` gets.
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Which name rule a kind follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    Subdomain,
    Label,
    Dns1035,
    /// RBAC and a few others only forbid path separators.
    PathSegment,
}

/// `None` when valid, else the Kubernetes message for `metadata.name`.
pub fn check_name(name: &str, rule: NameRule) -> Option<String> {
    let bad = |msg: &str| Some(format!("Invalid value: \"{name}\": {msg}"));
    if name.is_empty() {
        return Some("Required value: name or generateName is required".into());
    }
    match rule {
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                bad(&format!("may not be '{name}'"))
            } else if name.contains('/') || name.contains('%') {
                bad(&format!(
                    "may not contain '{}'",
                    if name.contains('/') { "/" } else { "%" }
                ))
            } else {
                None
            }
        }
        NameRule::Label => {
            if name.len() > 63 {
                bad("must be no more than 63 characters")
            } else if is_label(name) {
                None
            } else {
                bad(DNS1123_LABEL_MSG)
            }
        }
        NameRule::Dns1035 => {
            if name.len() > 63 {
                bad("must be no more than 63 characters")
            } else if is_label(name) && name.as_bytes()[0].is_ascii_lowercase() {
                None
            } else {
                bad(DNS1035_LABEL_MSG)
            }
        }
        NameRule::Subdomain => {
            if name.len() > 253 {
                bad("must be no more than 253 characters")
            } else if name.split('.').all(is_label) {
                None
            } else {
                bad(DNS1123_SUBDOMAIN_MSG)
            }
        }
    }
}

/// The rule for a kind (by group and plural).
pub fn name_rule(group: &str, plural: &str) -> NameRule {
    match (group, plural) {
        ("", "namespaces") => NameRule::Label,
        ("", "services") => NameRule::Dns1035,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_767_323_045);
        let s = rfc3339(t);
        assert_eq!(s, "2026-01-02T03:04:05Z");
        assert_eq!(parse_rfc3339(&s), Some(1_767_323_045));
    }

    #[test]
    fn names() {
        assert!(check_name("cp1-system", NameRule::Label).is_none());
        assert!(check_name("a.b", NameRule::Label).is_some());
        assert!(check_name("a.b", NameRule::Subdomain).is_none());
        assert!(
            check_name("Bad_Name", NameRule::Subdomain)
                .unwrap()
                .contains("RFC 1123 subdomain")
        );
        assert!(check_name("1svc", NameRule::Dns1035).is_some());
        assert!(check_name("system:masters", NameRule::PathSegment).is_none());
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_ne!(uid, new_uid());
    }
}
