//! Orchestration versions: how they are checked and compared, and the strategies a host uses
//! to decide which instances it may run.
//!
//! Every instance records the version it started under (see
//! [`RuntimeBuilder::version`](crate::RuntimeBuilder::version)). Versions are free-form text and
//! compare as Durable Functions compares them: two versions that are both dotted numbers of two
//! to four parts (`1.0`, `2.1.3`) compare part by part, numerically, a missing part counting
//! as less than any (`1.0` < `1.0.0`); any other pair compares as text, ignoring case. No
//! version is older than every version. A single number (`7`) is *not* a dotted number, so
//! `10` sorts before `9`: write `10.0` and `9.0`.

use std::cmp::Ordering;

use super::error::{Error, ErrorKind};

/// The longest version accepted, in characters.
pub const MAX_VERSION_LEN: usize = 100;

/// Checks a version given by a user: 1 to [`MAX_VERSION_LEN`] characters, none of them a
/// control character, and no leading or trailing white space.
pub fn validate_version(version: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "`{}` is not a valid orchestration version: {why}; use text such as `1.0` or \
                 `2024-06-01`",
                version.escape_debug()
            ),
        ))
    };
    if version.is_empty() {
        return bad("it is empty (leave the version out instead)");
    }
    if version.chars().count() > MAX_VERSION_LEN {
        return bad(&format!("it is longer than {MAX_VERSION_LEN} characters"));
    }
    if version.chars().any(char::is_control) {
        return bad("it contains a control character");
    }
    if version.trim() != version {
        return bad("it starts or ends with white space");
    }
    Ok(())
}

/// Compares two versions as Durable Functions does: none equals none and is older than any
/// version; two dotted numbers of two to four parts (`1.0`, `2.1.3`) compare part by part,
/// numerically, a missing part counting as less than any (`1.0` < `1.0.0`); anything else
/// compares as text, ignoring case. A single number (`7`) is not a dotted number, so `10`
/// sorts before `9`: write `10.0` and `9.0`.
///
/// ```
/// use std::cmp::Ordering;
/// use durable::compare_versions;
///
/// assert_eq!(compare_versions(Some("1.10"), Some("1.9")), Ordering::Greater);
/// assert_eq!(compare_versions(Some("1.0"), Some("1.0.0")), Ordering::Less);
/// assert_eq!(compare_versions(None, Some("1.0")), Ordering::Less);
/// assert_eq!(compare_versions(Some("v2-beta"), Some("V2-BETA")), Ordering::Equal);
/// ```
pub fn compare_versions(a: Option<&str>, b: Option<&str>) -> Ordering {
    let a = a.filter(|v| !v.trim().is_empty());
    let b = b.filter(|v| !v.trim().is_empty());
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => match (dotted(a), dotted(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => a
                .chars()
                .flat_map(char::to_uppercase)
                .cmp(b.chars().flat_map(char::to_uppercase)),
        },
    }
}

/// A dotted number of two to four parts, each a non-negative 32-bit number; missing parts are
/// -1, so `1.0` sorts before `1.0.0`.
fn dotted(v: &str) -> Option<[i64; 4]> {
    let parts: Vec<&str> = v.split('.').collect();
    if !(2..=4).contains(&parts.len()) {
        return None;
    }
    let mut out = [-1i64; 4];
    for (slot, part) in out.iter_mut().zip(&parts) {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: i32 = part.parse().ok()?;
        *slot = i64::from(n);
    }
    Some(out)
}

/// Which instances a host runs, by the version they started under compared with the host's
/// own ([`RuntimeBuilder::version`](crate::RuntimeBuilder::version)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VersionMatch {
    /// Every instance, whatever its version.
    None,
    /// Only instances of exactly the host's version (compared as [`compare_versions`] does:
    /// `2.0` and `2.0` match, `2.0` and `2.00` too, `2.0` and `2.0.0` do not).
    Strict,
    /// Instances of the host's version or older (the default): new code keeps running the
    /// instances that old code started, and old code never runs an instance that new code
    /// started. A host without a version runs only instances without one.
    #[default]
    CurrentOrOlder,
}

impl VersionMatch {
    /// Whether a host of version `host` may run an instance of version `instance`.
    pub fn allows(self, instance: Option<&str>, host: Option<&str>) -> bool {
        match self {
            VersionMatch::None => true,
            VersionMatch::Strict => compare_versions(instance, host) == Ordering::Equal,
            VersionMatch::CurrentOrOlder => compare_versions(instance, host) != Ordering::Greater,
        }
    }
}

/// What a host does with an instance its [`VersionMatch`] does not allow it to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VersionFailure {
    /// Leaves it for a host that may run it (the default; Durable Functions calls this
    /// `Reject`): the work goes back to the store untouched, is offered again after a
    /// back-off, and never counts as a failed attempt toward parking. The host logs it once
    /// per instance and lists it in [`Runtime::left_work`](crate::Runtime::left_work).
    #[default]
    Leave,
    /// Fails the instance with an error of kind
    /// [`ErrorKind::VersionMismatch`](crate::ErrorKind::VersionMismatch) naming both versions.
    Fail,
}

/// The error an instance fails with under [`VersionFailure::Fail`].
pub(crate) fn mismatch_error(
    name: &str,
    instance: Option<&str>,
    host: Option<&str>,
    strategy: VersionMatch,
) -> Error {
    Error::new(
        ErrorKind::VersionMismatch,
        format!(
            "orchestrator `{name}` of version {} cannot run on a host of version {} (version \
             match {strategy:?}); start it again on a host of that version, or run a host that \
             allows it",
            show(instance),
            show(host)
        ),
    )
}

/// A version for messages: quoted, or "none".
pub(crate) fn show(version: Option<&str>) -> String {
    match version {
        Some(v) => format!("`{v}`"),
        None => "none".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_numbers_compare_numerically() {
        assert_eq!(
            compare_versions(Some("1.10"), Some("1.9")),
            Ordering::Greater
        );
        assert_eq!(compare_versions(Some("2.0"), Some("2.0")), Ordering::Equal);
        assert_eq!(compare_versions(Some("2.0"), Some("2.00")), Ordering::Equal);
        assert_eq!(compare_versions(Some("1.0"), Some("1.0.0")), Ordering::Less);
        assert_eq!(
            compare_versions(Some("1.2.3.4"), Some("1.2.3.5")),
            Ordering::Less
        );
    }

    #[test]
    fn anything_else_compares_as_text_ignoring_case() {
        // Single numbers are not dotted numbers: text order, as in Durable Functions.
        assert_eq!(compare_versions(Some("10"), Some("9")), Ordering::Less);
        assert_eq!(
            compare_versions(Some("1.2.3.4.5"), Some("1.2.3.4.6")),
            Ordering::Less
        );
        assert_eq!(
            compare_versions(Some("Beta"), Some("beta")),
            Ordering::Equal
        );
        assert_eq!(compare_versions(Some("1.0"), Some("1.x")), Ordering::Less);
        assert_eq!(
            compare_versions(Some("2024-06-01"), Some("2024-11-01")),
            Ordering::Less
        );
    }

    #[test]
    fn no_version_is_older_than_any() {
        assert_eq!(compare_versions(None, None), Ordering::Equal);
        assert_eq!(compare_versions(None, Some("0.0")), Ordering::Less);
        assert_eq!(compare_versions(Some("a"), None), Ordering::Greater);
    }

    #[test]
    fn strategies() {
        use VersionMatch::*;
        assert!(None.allows(Some("9.0"), Some("1.0")));
        assert!(Strict.allows(Some("1.0"), Some("1.0")));
        assert!(!Strict.allows(Some("0.9"), Some("1.0")));
        assert!(!Strict.allows(Option::None, Some("1.0")));
        assert!(CurrentOrOlder.allows(Some("0.9"), Some("1.0")));
        assert!(CurrentOrOlder.allows(Option::None, Some("1.0")));
        assert!(!CurrentOrOlder.allows(Some("1.1"), Some("1.0")));
        assert!(!CurrentOrOlder.allows(Some("1.0"), Option::None));
    }

    #[test]
    fn bad_versions_are_refused_with_the_reason() {
        for (bad, why) in [
            ("", "empty"),
            (" 1.0", "white space"),
            ("1.0\n", "control character"),
        ] {
            let err = validate_version(bad).unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::InvalidArgument);
            assert!(err.to_string().contains(why), "{err}");
        }
        let long = "1".repeat(MAX_VERSION_LEN + 1);
        assert!(
            validate_version(&long)
                .unwrap_err()
                .to_string()
                .contains("longer than 100")
        );
        validate_version(&"1".repeat(MAX_VERSION_LEN)).unwrap();
        validate_version("2.0").unwrap();
    }
}
