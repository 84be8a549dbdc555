//! Which value of a request is its key: the `API-KEY` header (its configured name), or, when
//! `accept_bearer` is on, an `Authorization: Bearer` credential. Exactly one value, or a refusal.

use super::{AuthError, InvalidKey};

/// How a request carries its key.
#[derive(Debug, Clone)]
pub(super) struct Credentials {
    /// The key header's name.
    pub header: String,
    /// Whether `Authorization: Bearer <key>` is accepted too.
    pub bearer: bool,
}

/// Only HTTP's optional white space (space, tab) surrounds a field value; anything else, a
/// no-break space say, is part of the value and makes it invalid.
fn trimmed(value: &str) -> &str {
    value.trim_matches([' ', '\t'])
}

/// A refusal of the key's form: several values, a value that is not UTF-8, a Bearer
/// credential next to the key header.
fn malformed(why: &str) -> AuthError {
    crate::obs::info!("API key refused: {why}");
    AuthError::Invalid(InvalidKey::Malformed)
}

/// The one value among `values` (`None`: a value that is not UTF-8, refused as invalid): none
/// or only an empty one is `Missing`, several is `Invalid`.
pub(super) fn one_value<'a, I>(values: I) -> Result<&'a str, AuthError>
where
    I: IntoIterator<Item = Option<&'a str>>,
{
    let mut values = values.into_iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(malformed("the key header was sent more than once"));
    }
    match first {
        None => Err(AuthError::Missing),
        Some(None) => Err(malformed("the key header's value is not UTF-8")),
        Some(Some(value)) => match trimmed(value) {
            "" => Err(AuthError::Missing),
            value => Ok(value),
        },
    }
}

/// The credential of an `Authorization` value when its scheme is Bearer (any letter case).
fn bearer_token(value: &str) -> Option<&str> {
    let value = trimmed(value);
    let (scheme, token) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| trimmed(token))
}

impl Credentials {
    /// The key of a request with these key-header and `Authorization` values. A Bearer
    /// credential next to a key header is ambiguous, like two key headers: `Invalid`.
    /// `Authorization` values of other schemes belong to other authentication and are ignored.
    pub(super) fn select<'a, I, J>(
        &self,
        api_key: I,
        authorization: J,
    ) -> Result<&'a str, AuthError>
    where
        I: IntoIterator<Item = Option<&'a str>>,
        J: IntoIterator<Item = Option<&'a str>>,
    {
        let from_header = one_value(api_key);
        if !self.bearer {
            return from_header;
        }
        let (mut token, mut several) = (None, false);
        for value in authorization {
            let Some(value) = value else {
                return Err(malformed("the Authorization value is not UTF-8"));
            };
            if let Some(t) = bearer_token(value) {
                several |= token.is_some();
                token = Some(t);
            }
        }
        let Some(token) = token else {
            return from_header;
        };
        if !matches!(from_header, Err(AuthError::Missing)) {
            return Err(malformed(
                "sent both as a Bearer credential and in the key header",
            ));
        }
        if several {
            return Err(malformed("several Bearer credentials"));
        }
        match token {
            "" => Err(AuthError::Missing),
            token => Ok(token),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(v: &[&'a str]) -> Vec<Option<&'a str>> {
        v.iter().copied().map(Some).collect()
    }

    impl Credentials {
        fn pick<'a>(&self, key: &[&'a str], auth: &[&'a str]) -> Result<&'a str, AuthError> {
            self.select(values(key), values(auth))
        }
    }

    #[test]
    fn unreadable_values_are_invalid() {
        let on = Credentials {
            header: "API-KEY".into(),
            bearer: true,
        };
        let reason = |r: Result<&str, AuthError>| r.unwrap_err().invalid_reason();
        assert_eq!(reason(on.select([None], [])), Some(InvalidKey::Malformed));
        assert_eq!(
            reason(on.select([Some("k")], [None])),
            Some(InvalidKey::Malformed)
        );
        assert_eq!(
            reason(on.pick(&["a", "b"], &[])),
            Some(InvalidKey::Malformed),
            "several values are malformed"
        );
    }

    #[test]
    fn picks_exactly_one_value() {
        let off = Credentials {
            header: "API-KEY".into(),
            bearer: false,
        };
        let on = Credentials {
            bearer: true,
            ..off.clone()
        };
        assert_eq!(off.pick(&["k"], &[]), Ok("k"));
        assert_eq!(
            off.pick(&[], &["Bearer k"]),
            Err(AuthError::Missing),
            "off: ignored"
        );
        assert_eq!(on.pick(&[], &["Bearer k"]), Ok("k"));
        assert_eq!(on.pick(&[], &["bearer \t k "]), Ok("k"));
        assert_eq!(
            on.pick(&[" "], &["Bearer k"]),
            Ok("k"),
            "an empty header is none"
        );
        assert_eq!(
            on.pick(&["k"], &["Bearer k"]),
            Err(AuthError::INVALID),
            "ambiguous"
        );
        assert_eq!(
            on.pick(&[], &["Bearer a", "Bearer b"]),
            Err(AuthError::INVALID)
        );
        assert_eq!(on.pick(&[], &["Basic dXNlcg=="]), Err(AuthError::Missing));
        assert_eq!(
            on.pick(&["k"], &["Basic dXNlcg=="]),
            Ok("k"),
            "other schemes ignored"
        );
        assert_eq!(on.pick(&[], &["Bearer"]), Err(AuthError::Missing));
        assert_eq!(
            on.pick(&[], &["Bearerk"]),
            Err(AuthError::Missing),
            "not the scheme"
        );
        assert_eq!(on.pick(&["a", "b"], &[]), Err(AuthError::INVALID));
    }
}
