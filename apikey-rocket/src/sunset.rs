//! `Sunset` (RFC 8594): a response to a key that stops working soon says when, so the client
//! learns before it breaks.

use rocket::{Request, Response};
use time::macros::format_description;
use time::OffsetDateTime;

use crate::guard::Sunset;

/// An HTTP-date (RFC 9110 IMF-fixdate): `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(t: OffsetDateTime) -> Option<String> {
    let format = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.to_offset(time::UtcOffset::UTC).format(&format).ok()
}

/// Adds `Sunset` when this request's key is valid and ends soon.
pub(crate) fn announce<'r>(req: &'r Request<'_>, res: &mut Response<'r>) {
    if let Some(date) = req.local_cache(|| Sunset(None)).0.and_then(http_date) {
        res.set_raw_header("Sunset", date);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_imf_fixdate() {
        let t = OffsetDateTime::from_unix_timestamp(784_111_777).unwrap();
        assert_eq!(
            http_date(t).as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
    }
}
