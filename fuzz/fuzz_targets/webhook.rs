//! Fuzzes the integration's webhooks: `control::webhook::WebhookEvent::parse` on any body, and
//! `Integration::webhook` (signature check, then the event) against stores in a scratch
//! directory. Properties: never a panic; a parsed event's ids are the strings at the places the
//! event format names (`payload.configuration.id`, else `payload.configurationId`;
//! `payload.{project,team,user}.id`), and substrings of the body when it has no escapes; a body
//! whose signature does not match is refused as `InvalidSignature` and touches no file; a signed
//! body gets the outcome its parsed event calls for (with no installation stored).
//!
//! Input: one flag byte (bit 0: sign the body with the client secret), then the body.
//! `scripts/fuzz` seeds it with webhook events in Vercel's shapes.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use control::webhook::{WebhookError, WebhookEvent, WebhookOutcome};
use control::{Integration, IntegrationConfig, Secret};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const CLIENT_SECRET: &str = "client-secret-0123456789";

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
});

/// A scratch directory of this process, on tmpfs when there is one.
static DATA_DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    base.join(format!("spillway-fuzz-webhook-{}", std::process::id()))
});

static INTEGRATION: LazyLock<Integration> = LazyLock::new(|| {
    let config = IntegrationConfig {
        client_secret: Secret::new(CLIENT_SECRET),
        // Never reached: without `project_env` no event calls the API.
        api_url: "http://127.0.0.1:9".into(),
        ..IntegrationConfig::default()
    };
    Integration::new(config, control::Stores::in_dir(&DATA_DIR)).expect("an integration")
});

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// Checks an id against where the format says it comes from.
fn check_id(body: &[u8], id: Option<&str>, expected: Option<&str>, known: bool) {
    if known {
        assert_eq!(id, expected, "an id comes from its place in the event");
    }
    if let Some(id) = id {
        let escaped = body.contains(&b'\\');
        let found = body.windows(id.len().max(1)).any(|w| w == id.as_bytes()) || id.is_empty();
        assert!(found || escaped, "the id {id:?} is a substring of the body");
    }
}

fn check_parsed(body: &[u8], event: &WebhookEvent) {
    // serde skips ignored strings without checking their UTF-8 or escapes, so a parsed event
    // may hold bytes a `Value` refuses; replaced, they leave every field in place. It also skips
    // ignored numbers beyond an f64, which a `Value` refuses ("number out of range").
    let lossy = String::from_utf8_lossy(body);
    let value: Value = match serde_json::from_str(&lossy) {
        Ok(value) => value,
        Err(e) => {
            let out_of_range = e.to_string().starts_with("number out of range");
            assert!(
                lossy.contains('\\') || out_of_range,
                "a parsed event without escapes or huge numbers is JSON: {e}"
            );
            Value::Null
        }
    };
    let known = !value.is_null();
    let configuration = str_at(&value, "/payload/configuration/id")
        .or_else(|| str_at(&value, "/payload/configurationId"));
    match event {
        WebhookEvent::ConfigurationRemoved { configuration_id }
        | WebhookEvent::ScopeChangeConfirmed { configuration_id, .. } => {
            check_id(body, Some(configuration_id), configuration, known);
        }
        WebhookEvent::ProjectCreated { project_id, team_id, user_id, configuration_id } => {
            check_id(body, project_id.as_deref(), str_at(&value, "/payload/project/id"), known);
            check_id(body, team_id.as_deref(), str_at(&value, "/payload/team/id"), known);
            check_id(body, user_id.as_deref(), str_at(&value, "/payload/user/id"), known);
            check_id(body, configuration_id.as_deref(), configuration, known);
        }
        WebhookEvent::Other => {}
    }
}

fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.count())
}

fn check_webhook(signed: bool, body: &[u8], parsed: &Result<WebhookEvent, WebhookError>) {
    let key = Secret::new(CLIENT_SECRET).signing_key();
    let signature = if signed { key.sign(body) } else { key.sign(b"another body") };
    let outcome = RUNTIME.block_on(INTEGRATION.webhook(signature.as_bytes(), body));
    if !signed {
        assert!(matches!(outcome, Err(WebhookError::InvalidSignature)), "{outcome:?}");
        assert_eq!(files_in(&DATA_DIR), 0, "a refused webhook touches no file");
        return;
    }
    match (parsed, outcome) {
        (Err(_), Err(WebhookError::InvalidBody(_))) => {}
        (
            Ok(WebhookEvent::ConfigurationRemoved { .. }),
            Ok(WebhookOutcome::Removed { known, drains }),
        ) => {
            assert!(!known && drains == 0, "nothing was stored");
        }
        (
            Ok(WebhookEvent::ScopeChangeConfirmed { .. }),
            Ok(WebhookOutcome::ScopesUpdated { known }),
        ) => {
            assert!(!known, "nothing was stored");
        }
        (
            Ok(WebhookEvent::ProjectCreated { .. } | WebhookEvent::Other),
            Ok(WebhookOutcome::Ignored),
        ) => {}
        (parsed, outcome) => panic!("{parsed:?} handled as {outcome:?}"),
    }
    // Start the next input from empty stores.
    let _ = std::fs::remove_dir_all(&*DATA_DIR);
}

fuzz_target!(|input: &[u8]| {
    let [flags, body @ ..] = input else { return };
    let parsed = WebhookEvent::parse(body);
    if let Ok(event) = &parsed {
        check_parsed(body, event);
    }
    check_webhook(flags & 1 != 0, body, &parsed);
});
