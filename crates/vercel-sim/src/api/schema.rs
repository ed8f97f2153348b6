//! The request bodies of `POST /v1/drains`, `PATCH /v1/drains/{id}` and `POST /v1/drains/test`
//! checked as strictly as Vercel's published API schema (docs/vercel/DRAINS.md): required fields
//! and their types, one known `schemas` key, the `http` and `otlphttp` delivery variants,
//! sampling rules and filters. A body the real API would refuse is refused here with
//! `400 bad_request` and a message naming the field, so a client that only passes against the
//! simulator cannot be one Vercel refuses.

use serde_json::{Map, Value};

use super::bad_request;
use crate::wire::Refusal;

/// The `schemas` keys Vercel knows. `ai_gateway` and `connect` exist on the API, but their
/// payloads are not documented; the simulator accepts them and sends them an empty sample.
pub(crate) const SCHEMA_KEYS: [&str; 7] =
    ["log", "trace", "speed_insights", "analytics", "audit_log", "ai_gateway", "connect"];
/// At most this many sampling rules per drain.
const MAX_SAMPLING_RULES: usize = 10;
/// The top-level fields of a create body; an update may also carry `status`.
const CREATE_FIELDS: [&str; 9] = [
    "name",
    "projects",
    "projectIds",
    "schemas",
    "delivery",
    "filter",
    "sampling",
    "transforms",
    "source",
];
/// The log sources a basic filter may name.
const SOURCES: [&str; 7] =
    ["build", "edge", "lambda", "static", "external", "firewall", "redirect"];
const ENVIRONMENTS: [&str; 2] = ["production", "preview"];

type Checked<T> = Result<T, Refusal>;

fn refuse(message: String) -> Refusal {
    bad_request(&message)
}

/// The body as an object.
pub(crate) fn object(body: &Value) -> Checked<&Map<String, Value>> {
    body.as_object().ok_or_else(|| refuse("the body must be a JSON object".to_owned()))
}

/// Refuses a field outside `allowed` (the published schema allows no others).
pub(crate) fn only_fields(body: &Map<String, Value>, allowed: &[&str], what: &str) -> Checked<()> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(field) => Err(refuse(format!("{what}{field} is not a known field"))),
        None => Ok(()),
    }
}

/// The fields a create body may carry.
pub(crate) fn create_fields() -> &'static [&'static str] {
    &CREATE_FIELDS
}

/// `name`: a non-empty string.
pub(crate) fn name(value: Option<&Value>) -> Checked<String> {
    match value {
        Some(Value::String(name)) if !name.is_empty() => Ok(name.clone()),
        None => Err(refuse("name is required".to_owned())),
        Some(_) => Err(refuse("name must be a non-empty string".to_owned())),
    }
}

/// `schemas`: exactly one known key whose value carries a `version` string; returns the key.
pub(crate) fn schemas(value: Option<&Value>) -> Checked<String> {
    let Some(value) = value else { return Err(refuse("schemas is required".to_owned())) };
    let Some(schemas) = value.as_object() else {
        return Err(refuse("schemas must be an object".to_owned()));
    };
    let mut keys = schemas.keys();
    let (Some(key), None) = (keys.next(), keys.next()) else {
        return Err(refuse(format!("schemas must have exactly one key, not {}", schemas.len())));
    };
    if !SCHEMA_KEYS.contains(&key.as_str()) {
        return Err(refuse(format!("schemas.{key} is not a known schema")));
    }
    match schemas[key].get("version") {
        Some(Value::String(v)) if !v.is_empty() => Ok(key.clone()),
        _ => Err(refuse(format!("schemas.{key}.version must be a non-empty string"))),
    }
}

fn is_url(value: &Value) -> bool {
    value.as_str().is_some_and(|u| u.starts_with("http://") || u.starts_with("https://"))
}

/// `delivery` for a drain of `schema`: `http` for the JSON types, `otlphttp` for traces (the
/// simulator ties the two together; a trace drain delivering plain JSON batches would make no
/// sense). Returns it as given, `compression` defaulted to `none` for `http`.
pub(crate) fn delivery(value: Option<&Value>, schema: &str) -> Checked<Map<String, Value>> {
    let Some(value) = value else { return Err(refuse("delivery is required".to_owned())) };
    let Some(delivery) = value.as_object() else {
        return Err(refuse("delivery must be an object".to_owned()));
    };
    let kind = delivery.get("type").and_then(Value::as_str).unwrap_or("");
    let (fields, encodings): (&[&str], &[&str]) = match kind {
        "http" => (
            &["type", "endpoint", "encoding", "compression", "headers", "secret"],
            &["json", "ndjson"],
        ),
        "otlphttp" => (&["type", "endpoint", "encoding", "headers", "secret"], &["proto", "json"]),
        _ => return Err(refuse("delivery.type must be \"http\" or \"otlphttp\"".to_owned())),
    };
    let expected = if schema == "trace" { "otlphttp" } else { "http" };
    if kind != expected {
        return Err(refuse(format!("delivery.type must be \"{expected}\" for schemas.{schema}")));
    }
    only_fields(delivery, fields, &format!("delivery.type \"{kind}\": delivery."))?;
    let endpoint = &delivery.get("endpoint").cloned().unwrap_or(Value::Null);
    if kind == "http" && !is_url(endpoint) {
        return Err(refuse("delivery.endpoint must be an http(s) URL".to_owned()));
    }
    if kind == "otlphttp" {
        let traces_only = endpoint.as_object().is_some_and(|o| o.len() == 1);
        if !traces_only || !is_url(&endpoint["traces"]) {
            return Err(refuse(
                "delivery.endpoint must be {\"traces\": an http(s) URL}".to_owned(),
            ));
        }
    }
    let encoding = delivery.get("encoding").and_then(Value::as_str).unwrap_or("");
    if !encodings.contains(&encoding) {
        return Err(refuse(format!("delivery.encoding must be one of {}", encodings.join(", "))));
    }
    let mut checked = delivery.clone();
    if kind == "http" {
        let compression = delivery.get("compression").cloned().unwrap_or(Value::from("none"));
        if compression != "gzip" && compression != "none" {
            return Err(refuse("delivery.compression must be gzip or none".to_owned()));
        }
        checked.insert("compression".to_owned(), compression);
    }
    match delivery.get("headers") {
        None => return Err(refuse("delivery.headers is required (an object, {} for none)".into())),
        Some(Value::Object(headers)) if headers.values().all(Value::is_string) => {}
        Some(_) => return Err(refuse("delivery.headers must be an object of strings".to_owned())),
    }
    match delivery.get("secret") {
        None | Some(Value::Null) => {}
        Some(Value::String(secret)) if !secret.is_empty() => {}
        Some(_) => return Err(refuse("delivery.secret must be a non-empty string".to_owned())),
    }
    Ok(checked)
}

/// `projects` (`some`|`all`) and `projectIds` (strings; required, non-empty, with `some`).
pub(crate) fn projects(body: &Map<String, Value>) -> Checked<(Option<String>, Option<Value>)> {
    let ids = match body.get("projectIds") {
        None => None,
        Some(Value::Array(ids))
            if ids.iter().all(|id| id.as_str().is_some_and(|s| !s.is_empty())) =>
        {
            Some(Value::Array(ids.clone()))
        }
        Some(_) => return Err(refuse("projectIds must be an array of project ids".to_owned())),
    };
    let scope = match body.get("projects") {
        None => None,
        Some(Value::String(s)) if s == "some" || s == "all" => Some(s.clone()),
        Some(_) => return Err(refuse("projects must be \"some\" or \"all\"".to_owned())),
    };
    let no_ids = ids.as_ref().and_then(Value::as_array).is_none_or(Vec::is_empty);
    if scope.as_deref() == Some("some") && no_ids {
        return Err(refuse("projects \"some\" requires a non-empty projectIds".to_owned()));
    }
    Ok((scope, ids))
}

/// `sampling`: at most 10 rules `{type, rate, env?, requestPath?}`. `type` is `head_sampling`,
/// or a schema name, which Vercel's CLI sends.
pub(crate) fn sampling(value: &Value) -> Checked<Value> {
    let Some(rules) = value.as_array() else {
        return Err(refuse("sampling must be an array of rules".to_owned()));
    };
    if rules.len() > MAX_SAMPLING_RULES {
        return Err(refuse(format!("sampling takes at most {MAX_SAMPLING_RULES} rules")));
    }
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("sampling[{i}]");
        let Some(fields) = rule.as_object() else {
            return Err(refuse(format!("{at} must be an object")));
        };
        only_fields(fields, &["type", "rate", "env", "requestPath"], &format!("{at}."))?;
        let kind = rule["type"].as_str().unwrap_or("");
        if kind != "head_sampling" && !SCHEMA_KEYS.contains(&kind) {
            return Err(refuse(format!("{at}.type must be \"head_sampling\"")));
        }
        if !rule["rate"].as_f64().is_some_and(|r| (0.0..=1.0).contains(&r)) {
            return Err(refuse(format!("{at}.rate must be a number from 0 to 1")));
        }
        if fields.contains_key("env") && !ENVIRONMENTS.contains(&rule["env"].as_str().unwrap_or(""))
        {
            return Err(refuse(format!("{at}.env must be production or preview")));
        }
        if fields.contains_key("requestPath")
            && !rule["requestPath"].as_str().is_some_and(|p| p.starts_with('/'))
        {
            return Err(refuse(format!("{at}.requestPath must be a path starting with /")));
        }
    }
    Ok(value.clone())
}

fn strings_from(value: &Value, allowed: Option<&[&str]>) -> bool {
    value.as_array().is_some_and(|items| {
        items.iter().all(|item| {
            item.as_str().is_some_and(|s| !s.is_empty() && allowed.is_none_or(|a| a.contains(&s)))
        })
    })
}

/// `filter`: `{version:"v2", filter:{type:"basic", project?:{ids}, log?:{sources},
/// deployment?:{environments}}}` or `{version:"v2", filter:{type:"odata", text}}`.
pub(crate) fn filter(value: &Value) -> Checked<Value> {
    let Some(outer) = value.as_object() else {
        return Err(refuse("filter must be an object".to_owned()));
    };
    only_fields(outer, &["version", "filter"], "filter.")?;
    if outer.get("version").and_then(Value::as_str) != Some("v2") {
        return Err(refuse("filter.version must be \"v2\"".to_owned()));
    }
    let Some(inner) = outer.get("filter").and_then(Value::as_object) else {
        return Err(refuse("filter.filter must be an object".to_owned()));
    };
    match inner.get("type").and_then(Value::as_str) {
        Some("odata") => {
            only_fields(inner, &["type", "text"], "filter.filter.")?;
            if !inner.get("text").is_some_and(Value::is_string) {
                return Err(refuse("filter.filter.text must be a string".to_owned()));
            }
        }
        Some("basic") => {
            only_fields(inner, &["type", "project", "log", "deployment"], "filter.filter.")?;
            let checks: [(&str, &str, Option<&[&str]>); 3] = [
                ("project", "ids", None),
                ("log", "sources", Some(&SOURCES)),
                ("deployment", "environments", Some(&ENVIRONMENTS)),
            ];
            for (field, list, allowed) in checks {
                if let Some(part) = inner.get(field) {
                    let one_list = part.as_object().is_some_and(|o| o.len() == 1);
                    if !one_list || !strings_from(&part[list], allowed) {
                        return Err(refuse(format!(
                            "filter.filter.{field} must be {{\"{list}\": [..]}} of known values"
                        )));
                    }
                }
            }
        }
        _ => return Err(refuse("filter.filter.type must be \"basic\" or \"odata\"".to_owned())),
    }
    Ok(value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schemas_take_exactly_one_known_key_with_a_version() {
        assert_eq!(schemas(Some(&json!({"trace": {"version": "v1"}}))).unwrap(), "trace");
        for bad in [
            json!({}),
            json!({"log": {"version": "v1"}, "trace": {"version": "v1"}}),
            json!({"metrics": {"version": "v1"}}),
            json!({"log": {"version": 1}}),
            json!({"log": {}}),
            json!(["log"]),
        ] {
            assert!(schemas(Some(&bad)).is_err(), "{bad}");
        }
        assert!(schemas(None).is_err());
    }
}
