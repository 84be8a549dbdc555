//! `POST …/secret-scanning`: leaked keys reported by the secret scanner that found them
//! (GitHub's secret scanning partner format; opt-in). Mount [`routes`] where it should live and
//! manage a [`LeakReports`]:
//!
//! ```no_run
//! # use apikey_rocket::{core, ApiKey};
//! # #[rocket::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = apikey_rocket::load_config(&rocket::Config::figment())?;
//! let store = core::open(&config.settings).await?;
//! let leaks = core::admin::LeakReports::new(store.clone(), &config)?;
//! let _ = rocket::build()
//!     .attach(ApiKey::with_store(store))
//!     .manage(leaks)
//!     .mount("/apikey", apikey_rocket::leaks::routes())
//!     .launch()
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! The request needs no key: it is signed (`Github-Public-Key-Signature`, verified with the
//! keys of `secret_scanning_keys`). The answer is the scanner's list of labels.

use apikey_core::admin::{Label, LeakReports, MAX_REPORT_BYTES};
use apikey_core::http;
use rocket::data::{Data, ToByteUnit};
use rocket::request::{FromRequest, Outcome};
use rocket::serde::json::Json;
use rocket::{Request, Route, State};

use crate::{route, Prepared};

/// The report route (`POST /secret-scanning` under where it is mounted).
pub fn routes() -> Vec<Route> {
    rocket::routes![report]
}

/// The report's signature header, if any.
/// What is known of a report before its body is read: its signature and key identifier
/// headers and the client's address.
#[doc(hidden)]
pub struct Signed<'r> {
    signature: Option<&'r str>,
    key_id: Option<&'r str>,
    client: Option<std::net::IpAddr>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Signed<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let headers = req.headers();
        let client = crate::facts::client_ip(req);
        Outcome::Success(Signed {
            signature: headers.get_one("Github-Public-Key-Signature"),
            key_id: headers.get_one("Github-Public-Key-Identifier"),
            client,
        })
    }
}

/// What the route answers.
#[doc(hidden)]
#[derive(rocket::Responder)]
pub enum Answer {
    Labels(Json<Vec<Label>>),
    Refused(Prepared),
}

/// Takes a signed report of leaked keys.
#[route(POST, "/secret-scanning", auth = "none", data = "<body>")]
async fn report(body: Data<'_>, signed: Signed<'_>, leaks: Option<&State<LeakReports>>) -> Answer {
    let Some(leaks) = leaks else {
        apikey_core::__event!(
            error,
            "apikey: the secret scanning route needs `.manage(LeakReports::new(…)?)`"
        );
        let problem = http::Problem::new(503, "Reports are not taken on this service.");
        return Answer::Refused(problem.prepare().into());
    };
    // Refused before the body is read: no key, no or a malformed signature, an address past
    // its refused reports.
    let admitted = match leaks.admit(signed.signature, signed.key_id, signed.client) {
        Ok(admitted) => admitted,
        Err(e) => return Answer::Refused(http::Problem::for_leak_report(&e).into()),
    };
    let body = match body.open(MAX_REPORT_BYTES.bytes()).into_bytes().await {
        Ok(body) if body.is_complete() => body.into_inner(),
        Ok(_) => {
            let problem = http::Problem::new(413, "The report is too large.");
            return Answer::Refused(problem.prepare().into());
        }
        Err(_) => {
            let problem = http::Problem::new(400, "The report could not be read.");
            return Answer::Refused(problem.prepare().into());
        }
    };
    match leaks.report(admitted, &body).await {
        Ok(labels) => Answer::Labels(Json(labels)),
        Err(e) => Answer::Refused(http::Problem::for_leak_report(&e).into()),
    }
}
