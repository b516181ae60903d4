//! Request extractors whose rejections are [`ApiError`]s, so that every malformed request gets a
//! problem+json answer naming the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::error::ApiError;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body: 415 unless `application/json`, 413 past [`MAX_BODY_BYTES`], 400 if it is not
/// JSON, 422 naming the field if it does not fit the request type (unknown fields included).
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let body = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit: MAX_BODY_BYTES,
                }
            } else {
                ApiError::MalformedJson(rejection.body_text())
            }
        })?;
        parse_json(&body).map(ApiJson)
    }
}

/// Parses a request body, naming the offending field on a type mismatch.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            Category::Data => {
                let message = inner.to_string();
                ApiError::validation(field_of(&path, &message), strip_position(&message))
            }
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::MalformedJson(format!("the body is not valid JSON: {inner}"))
            }
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::MalformedJson(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// The dotted field a serde data error is about: the path, extended by the field an "unknown
/// field" or "missing field" message names.
fn field_of(path: &str, message: &str) -> String {
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    let path = if path == "." { "" } else { path };
    match (path, named) {
        ("", Some(name)) => name.to_owned(),
        // serde_path_to_error already ends an unknown field's path with its name.
        (path, Some(name)) if path == name || path.ends_with(&format!(".{name}")) => {
            path.to_owned()
        }
        (path, Some(name)) => format!("{path}.{name}"),
        ("", None) => "(body)".to_owned(),
        (path, None) => path.to_owned(),
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// Query parameters, parsed into a struct of optional strings (each handler parses the values
/// into domain types and names the parameter when one is wrong).
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query)
            .map(ApiQuery)
            .map_err(|e| ApiError::validation("(query)", e.to_string()))
    }
}

/// The `If-Match` header, when given: the `currentVersion` the client last read. A mismatch is
/// 412 (a failed precondition), whereas a mismatched `currentVersion` in the body is 409.
pub struct IfMatch(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        match parts.headers.get(header::IF_MATCH) {
            None => Ok(IfMatch(None)),
            Some(value) => {
                let text = value
                    .to_str()
                    .map_err(|_| ApiError::validation("If-Match", "must be visible ASCII"))?;
                // Accept both a bare version and an entity tag ("7" or W/"7").
                let version = text
                    .trim()
                    .trim_start_matches("W/")
                    .trim_matches('"')
                    .to_owned();
                Ok(IfMatch(Some(version)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Inner {
        volume_size: i64,
    }

    fn field(body: &str) -> String {
        match parse_json::<Outer>(body.as_bytes()) {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field(r#"{"name":"a","bogus":1}"#), "bogus");
        assert_eq!(
            field(r#"{"name":"a","inner":{"volumeSize":1,"x":2}}"#),
            "inner.x"
        );
        assert_eq!(
            field(r#"{"name":"a","inner":{"volumeSize":"big"}}"#),
            "inner.volumeSize"
        );
        assert_eq!(field(r#"{"inner":null}"#), "name");
        assert!(matches!(
            parse_json::<Outer>(b"{\"name\":"),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            parse_json::<Outer>(b"{\"name\":\"a\"} trailing"),
            Err(ApiError::MalformedJson(_))
        ));
    }
}
