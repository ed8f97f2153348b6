//! `[integration]` into control's [`IntegrationConfig`]: client id, client secret and redirect
//! URL together turn the integration's control plane on.

use std::net::SocketAddr;

use control::IntegrationConfig;

use super::raw::RawIntegration;
use super::Problems;

/// `[integration]`: `None` when client id, secret and redirect URL are all unset.
pub(super) fn integration_config(
    raw: &RawIntegration,
    problems: &mut Problems,
) -> Option<IntegrationConfig> {
    let required = [
        ("client_id", "SPILLWAY_VERCEL_CLIENT_ID", given(&raw.client_id)),
        ("client_secret", "SPILLWAY_VERCEL_CLIENT_SECRET", given(&raw.client_secret)),
        ("redirect_url", "SPILLWAY_VERCEL_REDIRECT_URL", given(&raw.redirect_url)),
    ];
    if required.iter().all(|(_, _, v)| v.is_none()) {
        return None;
    }
    for (key, env, value) in &required {
        if value.is_none() {
            problems.push(format!(
                "integration.{key}: required with the other integration credentials; or set {env}"
            ));
        }
    }
    let d = IntegrationConfig::default();
    let mut listen = d.listen;
    if let Some(text) = given(&raw.listen) {
        match text.parse::<SocketAddr>() {
            Ok(addr) => listen = addr,
            Err(_) => problems
                .push(format!("integration.listen: {text:?} is not an address like {}", d.listen)),
        }
    }
    let api_url = given(&raw.api_url).map_or(d.api_url, str::to_owned);
    http_url("api_url", &api_url, problems);
    let create_drain = raw.create_drain.unwrap_or(d.create_drain);
    let drain_url = given(&raw.drain_url).map(str::to_owned);
    match &drain_url {
        Some(url) => http_url("drain_url", url, problems),
        None if create_drain => problems
            .push("integration.drain_url: required to create drains (or set create_drain = false)"),
        None => {}
    }
    let project_env = given(&raw.project_env).map(str::to_owned);
    if let Some(key) = project_env.as_deref().filter(|key| !is_variable_name(key)) {
        problems.push(format!("integration.project_env: {key:?} is not a variable name"));
    }
    let (slug, allowed_teams, require_state) = install_guards(raw, problems);
    let [(_, _, client_id), (_, _, client_secret), (_, _, redirect_url)] = required;
    if let Some(redirect_url) = redirect_url {
        http_url("redirect_url", redirect_url, problems);
    }
    Some(IntegrationConfig {
        client_id: client_id.unwrap_or_default().to_owned(),
        client_secret: control::Secret::new(client_secret.unwrap_or_default()),
        redirect_url: redirect_url.unwrap_or_default().to_owned(),
        api_url,
        listen,
        drain_url,
        create_drain,
        project_env,
        slug,
        allowed_teams,
        require_state,
        data_types: data_types(raw, d.data_types, problems),
        ..d
    })
}

/// `data_types`: one drain per type at install; each named once, by name or slug.
fn data_types(
    raw: &RawIntegration,
    default: Vec<control::DataType>,
    problems: &mut Problems,
) -> Vec<control::DataType> {
    let Some(names) = &raw.data_types else { return default };
    let mut types = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match name.trim().parse::<control::DataType>() {
            Ok(t) if types.contains(&t) => {
                problems.push(format!("integration.data_types[{i}]: {t} is listed twice"));
            }
            Ok(t) => types.push(t),
            Err(e) => problems.push(format!("integration.data_types[{i}]: {e}")),
        }
    }
    if names.is_empty() {
        problems.push("integration.data_types: empty; list at least one (default [\"logs\"])");
    }
    types
}

/// `slug` (where installs that start here go), `allowed_teams` and `require_state`.
fn install_guards(
    raw: &RawIntegration,
    problems: &mut Problems,
) -> (Option<String>, Vec<String>, bool) {
    let slug = given(&raw.slug).map(str::to_owned);
    let slug_chars = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
    if let Some(slug) = slug.as_deref().filter(|s| !slug_chars(s)) {
        problems.push(format!("integration.slug: {slug:?} is not an integration's URL slug"));
    }
    let require_state = raw.require_state.unwrap_or(IntegrationConfig::default().require_state);
    if require_state && slug.is_none() {
        problems.push("integration.require_state: needs integration.slug, where installs start");
    }
    let mut allowed_teams = Vec::new();
    for (i, team) in raw.allowed_teams.iter().flatten().enumerate() {
        match team.trim() {
            "" => problems.push(format!("integration.allowed_teams[{i}]: is empty")),
            team => allowed_teams.push(team.to_owned()),
        }
    }
    (slug, allowed_teams, require_state)
}

/// A value that is set and not blank.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn http_url(key: &str, value: &str, problems: &mut Problems) {
    let ok = url::Url::parse(value)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base());
    if !ok {
        problems.push(format!("integration.{key}: {value:?} is not an http(s) URL"));
    }
}

fn is_variable_name(key: &str) -> bool {
    key.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
