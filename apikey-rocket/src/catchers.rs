//! Catchers turning refusals into problem+json.

use rocket::http::Status;
use rocket::{catch, Request};

use crate::guard::Refusal;
use crate::problem::Problem;
use crate::ApiKeys;

fn problem(status: Status, req: &Request<'_>) -> Problem {
    let header = req
        .rocket()
        .state::<ApiKeys>()
        .map_or("API-KEY", |k| k.header());
    match req.local_cache(|| Refusal(None)).0 {
        Some(err) => Problem::for_auth(err, header),
        None => Problem::new(status, status.reason_lossy()),
    }
}

#[catch(401)]
pub fn unauthorized(req: &Request<'_>) -> Problem {
    problem(Status::Unauthorized, req)
}

#[catch(403)]
pub fn forbidden(req: &Request<'_>) -> Problem {
    problem(Status::Forbidden, req)
}

#[catch(503)]
pub fn unavailable(req: &Request<'_>) -> Problem {
    problem(Status::ServiceUnavailable, req)
}

#[catch(429)]
pub fn too_many_requests(req: &Request<'_>) -> Problem {
    problem(Status::TooManyRequests, req)
}
