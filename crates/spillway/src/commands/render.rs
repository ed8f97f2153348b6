//! What the commands print: a drain (never a secret in clear), drain lists, legacy drains, as
//! tables or, with `--json`, as JSON.

use control::model::{Drain, DrainSecret, LogDrain};
use control::{DrainEntry, Secret};
use serde::Serialize;

/// A serde enum's wire name (`"enabled"`, `"ndjson"`, …).
pub(crate) fn to_name(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "unknown".to_owned(),
    }
}

/// Shows the first characters of a secret and hides the rest: enough to tell two apart.
pub fn redact(secret: &Secret) -> String {
    let value = secret.expose();
    if value.chars().count() >= 16 {
        let prefix: String = value.chars().take(4).collect();
        format!("{prefix}****")
    } else {
        "****".to_owned()
    }
}

/// What the commands print about a drain: never a secret in clear.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DrainView {
    id: String,
    name: Option<String>,
    /// What it carries, as `--type` names it (`logs`, `speed-insights`, …), or the schema key
    /// for a type this build does not know.
    #[serde(rename = "type")]
    data_type: Option<String>,
    /// `enabled`, `disabled` or `errored`.
    status: Option<String>,
    /// `http` or `otlphttp`.
    delivery: Option<String>,
    endpoint: Option<String>,
    encoding: Option<String>,
    compression: Option<String>,
    projects: Option<String>,
    project_ids: Vec<String>,
    team_id: Option<String>,
    created_at: Option<i64>,
    /// Redacted, or the marker kind (`INTEGRATION_SECRET`).
    secret: Option<String>,
    /// The names of the headers Vercel sends with each delivery (their values are not shown).
    headers: Vec<String>,
    registered: bool,
    path_key: Option<String>,
    disabled_reason: Option<String>,
}

impl DrainView {
    pub(crate) fn new(drain: &Drain, entry: Option<&DrainEntry>) -> DrainView {
        let delivery = drain.delivery.as_ref();
        let secret = match (entry, delivery.and_then(|d| d.secret.as_ref())) {
            (Some(entry), _) => Some(redact(&entry.secret)),
            (None, Some(DrainSecret::Value(secret))) => Some(redact(secret)),
            (None, Some(DrainSecret::Kind { kind })) => Some(kind.clone()),
            (None, None) => None,
        };
        DrainView {
            id: drain.id.clone(),
            name: drain.name.clone(),
            data_type: type_name(drain),
            status: drain.status.map(|s| to_name(&s)),
            delivery: delivery.and_then(|d| d.kind).map(|k| to_name(&k)),
            endpoint: delivery.and_then(|d| d.endpoint.clone()),
            encoding: delivery.and_then(|d| d.encoding).map(|e| to_name(&e)),
            compression: delivery.and_then(|d| d.compression).map(|c| to_name(&c)),
            projects: drain.projects.map(|p| to_name(&p)),
            project_ids: drain.project_ids.clone(),
            team_id: drain.team_id.clone(),
            created_at: drain.created_at,
            secret,
            headers: delivery.map(|d| d.headers.keys().cloned().collect()).unwrap_or_default(),
            registered: entry.is_some(),
            path_key: entry.map(|e| e.path_key.clone()),
            disabled_reason: drain.disabled_reason.clone(),
        }
    }
}

/// The type a drain's `schemas` name: its `--type` spelling, else the schema key itself.
fn type_name(drain: &Drain) -> Option<String> {
    match drain.data_type() {
        Some(data_type) => Some(data_type.slug().to_owned()),
        None => drain.schemas.keys().next().cloned(),
    }
}

fn or_dash(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("-")
}

pub(crate) fn print_drain(view: &DrainView, json_output: bool) {
    if json_output {
        println!("{}", serde_json::to_string_pretty(view).expect("views serialize"));
        return;
    }
    let projects = if view.project_ids.is_empty() {
        or_dash(&view.projects).to_owned()
    } else {
        view.project_ids.join(", ")
    };
    let rows = [
        ("id", view.id.clone()),
        ("name", or_dash(&view.name).to_owned()),
        ("type", or_dash(&view.data_type).to_owned()),
        ("status", or_dash(&view.status).to_owned()),
        ("delivery", or_dash(&view.delivery).to_owned()),
        ("endpoint", or_dash(&view.endpoint).to_owned()),
        ("encoding", or_dash(&view.encoding).to_owned()),
        ("compression", or_dash(&view.compression).to_owned()),
        ("projects", projects),
        ("team", or_dash(&view.team_id).to_owned()),
        ("secret", or_dash(&view.secret).to_owned()),
        ("headers", if view.headers.is_empty() { "-".to_owned() } else { view.headers.join(", ") }),
        ("registered", if view.registered { "yes" } else { "no" }.to_owned()),
    ];
    for (key, value) in rows {
        println!("{key:<12} {value}");
    }
    if let Some(reason) = &view.disabled_reason {
        println!("{:<12} {reason}", "disabled by");
    }
}

pub(crate) fn print_list(views: &[DrainView], json_output: bool) {
    if json_output {
        println!("{}", serde_json::to_string_pretty(views).expect("views serialize"));
        return;
    }
    let header = ["ID", "NAME", "TYPE", "STATUS", "ENDPOINT", "SECRET", "REGISTERED"];
    let rows: Vec<[String; 7]> = views
        .iter()
        .map(|v| {
            [
                v.id.clone(),
                or_dash(&v.name).to_owned(),
                or_dash(&v.data_type).to_owned(),
                or_dash(&v.status).to_owned(),
                or_dash(&v.endpoint).to_owned(),
                or_dash(&v.secret).to_owned(),
                if v.registered { "yes" } else { "no" }.to_owned(),
            ]
        })
        .collect();
    print_table(header, &rows);
}

/// A legacy log drain as printed (header names only: values may be credentials).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LegacyView {
    id: String,
    name: Option<String>,
    url: Option<String>,
    delivery_format: Option<String>,
    project_ids: Vec<String>,
    sources: Vec<String>,
    environments: Vec<String>,
    headers: Vec<String>,
    configuration_id: Option<String>,
    created_at: Option<i64>,
}

impl LegacyView {
    pub(crate) fn new(drain: &LogDrain) -> LegacyView {
        LegacyView {
            id: drain.id.clone(),
            name: drain.name.clone(),
            url: drain.url.clone(),
            delivery_format: drain.delivery_format.map(|f| to_name(&f)),
            project_ids: drain.project_ids.clone(),
            sources: drain.sources.clone(),
            environments: drain.environments.clone(),
            headers: drain.headers.keys().cloned().collect(),
            configuration_id: drain.configuration_id.clone(),
            created_at: drain.created_at,
        }
    }
}

pub(crate) fn print_legacy_list(views: &[LegacyView], json_output: bool) {
    if json_output {
        println!("{}", serde_json::to_string_pretty(views).expect("views serialize"));
        return;
    }
    let header = ["ID", "NAME", "URL", "FORMAT", "PROJECTS"];
    let rows: Vec<[String; 5]> = views
        .iter()
        .map(|v| {
            let projects =
                if v.project_ids.is_empty() { "all".to_owned() } else { v.project_ids.join(",") };
            [
                v.id.clone(),
                or_dash(&v.name).to_owned(),
                or_dash(&v.url).to_owned(),
                or_dash(&v.delivery_format).to_owned(),
                projects,
            ]
        })
        .collect();
    print_table(header, &rows);
}

/// Prints `rows` under `header` in columns as wide as their widest cell.
fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let padded: Vec<String> =
            cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&header);
    for row in rows {
        line(&row.each_ref().map(String::as_str));
    }
    if rows.is_empty() {
        println!("(no drains)");
    }
}
