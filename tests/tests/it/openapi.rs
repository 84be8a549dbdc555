//! The demo's `/openapi.json`: parsed with an OpenAPI 3.1 model (`oas3`; utoipa writes 3.1,
//! which 3.0 models such as `openapiv3` cannot read), every operation says who may call it,
//! exactly as its `#[route]` does.

use apikey_tests::{client, get, rocket_with};
use oas3::spec::{ObjectOrReference, Operation, SecurityScheme};
use oas3::Spec;
use rocket::http::Status;

/// The demo's document under `toml` (on a memory store).
async fn document(toml: &str) -> Spec {
    let config = format!("[default.apikey]\ndatabase_url = \"memory:\"\n{toml}");
    let (rocket, _) = my_service::app(rocket_with(&config)).await.unwrap();
    let client = client(rocket).await;
    let (status, body) = get(&client, "/openapi.json", None).await;
    assert_eq!(status, Status::Ok, "served without a key");
    let spec = oas3::from_json(&body).expect("a valid OpenAPI 3.1 document");
    assert!(spec.openapi.starts_with("3.1"), "{}", spec.openapi);
    spec
}

fn operation<'a>(doc: &'a Spec, method: &str, path: &str) -> &'a Operation {
    let item = doc
        .paths
        .as_ref()
        .and_then(|p| p.get(path))
        .unwrap_or_else(|| panic!("{path}"));
    match method {
        "get" => item.get.as_ref(),
        "post" => item.post.as_ref(),
        _ => None,
    }
    .unwrap_or_else(|| panic!("{method} {path}"))
}

/// Each alternative of an operation's security, as the scheme names it requires.
fn security(op: &Operation) -> Vec<Vec<String>> {
    assert!(!op.security.is_empty(), "security stated");
    op.security
        .iter()
        .map(|alt| alt.0.keys().cloned().collect())
        .collect()
}

fn problem_statuses(op: &Operation) -> Vec<String> {
    let mut statuses: Vec<String> = op
        .responses
        .iter()
        .flatten()
        .filter_map(|(status, r)| match r {
            ObjectOrReference::Object(r) if r.content.contains_key("application/problem+json") => {
                Some(status.clone())
            }
            _ => None,
        })
        .collect();
    statuses.sort();
    statuses
}

#[tokio::test]
async fn every_operation_says_who_may_call_it() {
    let doc = document("").await;
    let components = doc.components.as_ref().unwrap();
    match components.security_schemes.get("ApiKey") {
        Some(ObjectOrReference::Object(SecurityScheme::ApiKey { location, name, .. })) => {
            assert_eq!(location, "header");
            assert_eq!(name, "API-KEY");
        }
        other => panic!("ApiKey scheme: {other:?}"),
    }
    assert!(!components.security_schemes.contains_key("Bearer"));
    assert!(components.schemas.contains_key("Problem"));

    let key = vec![vec!["ApiKey".to_owned()]];
    let my_service = operation(&doc, "get", "/my_service");
    assert_eq!(security(my_service), key);
    assert_eq!(problem_statuses(my_service), ["401", "429", "503"]);
    assert!(my_service.responses.as_ref().unwrap().contains_key("200"));

    let billing = operation(&doc, "post", "/billing");
    assert_eq!(security(billing), key);
    assert_eq!(problem_statuses(billing), ["401", "403", "429", "503"]);
    // oas3 strips the `x-` of extensions.
    assert_eq!(
        billing.extensions.get("apikey-groups"),
        Some(&serde_json::json!(["billing"]))
    );
    assert!(billing
        .description
        .as_deref()
        .unwrap()
        .contains("groups: billing"));

    let whoami = operation(&doc, "get", "/whoami");
    assert_eq!(
        security(whoami),
        [vec![], vec!["ApiKey".to_owned()]],
        "optional"
    );
    assert_eq!(problem_statuses(whoami), ["401", "429", "503"]);

    for path in ["/health", "/stats", "/openapi.json"] {
        let op = operation(&doc, "get", path);
        assert_eq!(security(op), [Vec::<String>::new()], "{path} is open");
        assert!(problem_statuses(op).is_empty(), "{path}");
    }
}

#[tokio::test]
async fn the_document_follows_the_configuration() {
    let doc = document("header = \"X-Token\"\naccept_bearer = true\n").await;
    let schemes = &doc.components.as_ref().unwrap().security_schemes;
    match schemes.get("ApiKey") {
        Some(ObjectOrReference::Object(SecurityScheme::ApiKey { name, .. })) => {
            assert_eq!(name, "X-Token");
        }
        other => panic!("{other:?}"),
    }
    match schemes.get("Bearer") {
        Some(ObjectOrReference::Object(SecurityScheme::Http { scheme, .. })) => {
            assert_eq!(scheme, "bearer");
        }
        other => panic!("{other:?}"),
    }
    let either = vec![vec!["ApiKey".to_owned()], vec!["Bearer".to_owned()]];
    assert_eq!(security(operation(&doc, "get", "/my_service")), either);
}
