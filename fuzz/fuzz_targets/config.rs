//! Fuzzes the configuration file: `spillway::config::RawConfig::from_toml`, then `validate`.
//! Properties: never a panic; what is printed (the accepted config's `Debug`, which
//! `spillway check-config` prints, or the error's message) does not depend on the secrets the
//! file holds (`vercel.drain_secret`, `integration.client_secret`, the values of
//! `vercel.required_headers`, sensitive `sinks.kafka.properties`): the same file with every
//! secret changed to a twin of the same length and character classes prints exactly the same;
//! and a secret long enough to be unmistakable never appears in it.
//!
//! Input: TOML text. `scripts/fuzz` seeds it with `deploy/spillway.toml` and small files that
//! set every secret.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use spillway::config::RawConfig;
use toml::{Table, Value};

/// The librdkafka (2.12) properties whose values are secrets, from its CONFIGURATION.md.
const SENSITIVE: [&str; 10] = [
    "sasl.password",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.client.credentials.client.secret",
    "sasl.oauthbearer.assertion.private.key.pem",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl_key",
    "ssl.keystore.password",
];

/// The same string with each letter and digit moved to the next one of its class.
fn twin(secret: &str) -> String {
    let next = |c: char| match c {
        'a'..='y' | 'A'..='Y' | '0'..='8' => char::from(c as u8 + 1),
        'z' => 'a',
        'Z' => 'A',
        '9' => '0',
        other => other,
    };
    secret.chars().map(next).collect()
}

/// Replaces `value`, if a string, by `change` of it; records the original in `seen`.
fn visit(value: Option<&mut Value>, change: &dyn Fn(&str) -> String, seen: &mut Vec<String>) {
    if let Some(Value::String(s)) = value {
        seen.push(s.clone());
        *s = change(s);
    }
}

/// Applies `change` to every secret string of `table`, returning the secrets seen.
fn secrets(table: &mut Table, change: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut seen = Vec::new();
    if let Some(vercel) = table.get_mut("vercel").and_then(Value::as_table_mut) {
        visit(vercel.get_mut("drain_secret"), change, &mut seen);
        if let Some(Value::Array(headers)) = vercel.get_mut("required_headers") {
            for header in headers.iter_mut() {
                if let Value::String(h) = header {
                    if let Some((name, value)) = h.split_once(':') {
                        seen.push(value.trim().to_owned());
                        *h = format!("{name}:{}", change(value));
                    }
                }
            }
        }
    }
    if let Some(integration) = table.get_mut("integration").and_then(Value::as_table_mut) {
        visit(integration.get_mut("client_secret"), change, &mut seen);
    }
    let properties = table
        .get_mut("sinks")
        .and_then(Value::as_table_mut)
        .and_then(|s| s.get_mut("kafka"))
        .and_then(Value::as_table_mut)
        .and_then(|k| k.get_mut("properties"))
        .and_then(Value::as_table_mut);
    for (key, value) in properties.into_iter().flatten() {
        let key = key.to_ascii_lowercase();
        if SENSITIVE.contains(&key.as_str()) {
            visit(Some(value), change, &mut seen);
        }
    }
    seen
}

/// What the file prints: the config's `Debug` (as `check-config`) or the error.
fn printed(text: &str) -> String {
    match RawConfig::from_toml(text) {
        Err(message) => format!("parse: {message}"),
        Ok(raw) => match raw.validate(Vec::new()) {
            Ok(config) => format!("{config:#?}"),
            Err(e) => format!("invalid: {e}"),
        },
    }
}

/// What an empty file prints.
static DEFAULTS: LazyLock<String> = LazyLock::new(|| printed(""));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let printed_as_is = printed(text);
    let Ok(mut table) = text.parse::<Table>() else { return };
    let mut twinned = table.clone();
    let found = secrets(&mut table, &|s| s.to_owned());
    if found.is_empty() {
        return;
    }
    secrets(&mut twinned, &|s| twin(s));
    let (Ok(original), Ok(changed)) = (toml::to_string(&table), toml::to_string(&twinned)) else {
        return;
    };
    let (a, b) = (printed(&original), printed(&changed));
    assert_eq!(a, b, "what is printed depends on a secret");
    // A long secret written once in the file and not part of what the defaults print.
    let unmistakable = |s: &&String| {
        s.len() >= 12 && text.matches(s.as_str()).count() == 1 && !DEFAULTS.contains(s.as_str())
    };
    for secret in found.iter().filter(unmistakable) {
        assert!(!printed_as_is.contains(secret.as_str()), "a secret is printed: {printed_as_is}");
    }
});
