//! Which value of a request is its key: the `API-KEY` header (its configured name), or, when
//! `accept_bearer` is on, an `Authorization: Bearer` credential. Exactly one value, or a refusal.

use super::AuthError;

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

/// The one value among `values`: none or only empty ones is `Missing`, several is `Invalid`.
pub(super) fn one_value<'a, I>(values: I) -> Result<&'a str, AuthError>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut values = values.into_iter();
    let first = values.next();
    if values.next().is_some() {
        log::info!("API key refused: the key header was sent more than once");
        return Err(AuthError::INVALID);
    }
    match first.map(trimmed) {
        None | Some("") => Err(AuthError::Missing),
        Some(value) => Ok(value),
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
        I: IntoIterator<Item = &'a str>,
        J: IntoIterator<Item = &'a str>,
    {
        let from_header = one_value(api_key);
        if !self.bearer {
            return from_header;
        }
        let tokens: Vec<&str> = authorization.into_iter().filter_map(bearer_token).collect();
        if tokens.is_empty() {
            return from_header;
        }
        if !matches!(from_header, Err(AuthError::Missing)) {
            log::info!("API key refused: sent both as a Bearer credential and in the key header");
            return Err(AuthError::INVALID);
        }
        one_value(tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(off.select(["k"], []), Ok("k"));
        assert_eq!(
            off.select([], ["Bearer k"]),
            Err(AuthError::Missing),
            "off: ignored"
        );
        assert_eq!(on.select([], ["Bearer k"]), Ok("k"));
        assert_eq!(on.select([], ["bearer \t k "]), Ok("k"));
        assert_eq!(
            on.select([" "], ["Bearer k"]),
            Ok("k"),
            "an empty header is none"
        );
        assert_eq!(
            on.select(["k"], ["Bearer k"]),
            Err(AuthError::INVALID),
            "ambiguous"
        );
        assert_eq!(
            on.select([], ["Bearer a", "Bearer b"]),
            Err(AuthError::INVALID)
        );
        assert_eq!(on.select([], ["Basic dXNlcg=="]), Err(AuthError::Missing));
        assert_eq!(
            on.select(["k"], ["Basic dXNlcg=="]),
            Ok("k"),
            "other schemes ignored"
        );
        assert_eq!(on.select([], ["Bearer"]), Err(AuthError::Missing));
        assert_eq!(
            on.select([], ["Bearerk"]),
            Err(AuthError::Missing),
            "not the scheme"
        );
        assert_eq!(on.select(["a", "b"], []), Err(AuthError::INVALID));
    }
}
