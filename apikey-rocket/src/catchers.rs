//! Catchers turning refusals into problem+json.

use apikey_core::config::DEFAULT_HEADER;
use rocket::http::Status;
use rocket::{catch, Request};

use apikey_core::http::Answers;

use crate::guard::Verified;
use crate::problem::Prepared;
use crate::state::ApiKeyState;

fn problem(status: Status, req: &Request<'_>) -> Prepared {
    let entry = Verified::of(req);
    let refusal = entry.refusal();
    // The state that verified the key, kept in the request's entry; else Rocket's.
    match entry
        .keys()
        .or_else(|| req.rocket().state::<ApiKeyState>().map(|state| &state.keys))
    {
        Some(keys) => keys.answers().get(refusal, status.code).into(),
        None => Answers::new(DEFAULT_HEADER, false)
            .get(refusal, status.code)
            .into(),
    }
}

#[catch(401)]
pub fn unauthorized(req: &Request<'_>) -> Prepared {
    problem(Status::Unauthorized, req)
}

#[catch(403)]
pub fn forbidden(req: &Request<'_>) -> Prepared {
    problem(Status::Forbidden, req)
}

#[catch(503)]
pub fn unavailable(req: &Request<'_>) -> Prepared {
    problem(Status::ServiceUnavailable, req)
}

#[catch(429)]
pub fn too_many_requests(req: &Request<'_>) -> Prepared {
    problem(Status::TooManyRequests, req)
}
