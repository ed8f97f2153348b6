//! The configuration's contract: embedded defaults, the environment over the file, every
//! problem reported at once with its key path, secrets never shown, the documented example true.

use std::path::{Path, PathBuf};

use listener::SigningKey;
use spillway::config::{load, ConfigError, RawConfig};

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn the_embedded_default_needs_no_file() {
    let config = load(None, no_env).unwrap();
    // No secret and no address: loopback only (see `fail_closed.rs`); with a secret, every
    // address.
    assert_eq!(config.ingest.listen, "127.0.0.1:8080".parse().unwrap());
    let signed = load(None, |k| (k == "SPILLWAY_DRAIN_SECRET").then(|| "s".to_owned())).unwrap();
    assert_eq!(signed.ingest.listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(config.ingest.drain_path, "/vercel/logs");
    assert!(config.ingest.drain_secret.is_none());
    assert_eq!(config.file_sink.unwrap().dir, PathBuf::from("./spillway-data/logs"));
    assert_eq!(config.dead_letter.dir, PathBuf::from("./spillway-data/dead-letter"));
}

#[test]
fn environment_overrides_the_file() {
    let mut raw = RawConfig::from_toml(
        "data_dir = \"/srv/a\"\n[server]\nlisten = \"127.0.0.1:1\"\nmax_body_bytes = 2048\n",
    )
    .unwrap();
    let env = |k: &str| match k {
        "SPILLWAY_LISTEN" => Some("127.0.0.1:9999".to_owned()),
        "SPILLWAY_DATA_DIR" => Some("/srv/b".to_owned()),
        "SPILLWAY_MAX_BODY_BYTES" => Some("4096".to_owned()),
        "SPILLWAY_DRAIN_SECRET" => Some("s3cret".to_owned()),
        "SPILLWAY_VERIFY_CODE" => Some("vc".to_owned()),
        _ => None,
    };
    let mut problems = Vec::new();
    raw.apply_env(env, &mut problems);
    let config = raw.validate(problems).unwrap();
    assert_eq!(config.ingest.listen.port(), 9999);
    assert_eq!(config.data_dir, PathBuf::from("/srv/b"));
    assert_eq!(config.ingest.max_body_bytes, 4096);
    assert!(config
        .ingest
        .drain_secret
        .unwrap()
        .verifies(b"x", SigningKey::new("s3cret").sign(b"x").as_bytes()));
    assert_eq!(config.ingest.verify_code.as_deref(), Some("vc"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let raw = RawConfig::from_toml(
        "[server]\nlisten = \"nowhere\"\nmax_connections = 0\ndrain_path = \"logs\"\n\
         [sinks.file]\nfsync = \"sometimes\"\nmax_file_bytes = 10\nsync_lanes = 0\n\
         [sinks.dead_letter]\nsync_lanes = 17\n",
    )
    .unwrap();
    let mut problems = Vec::new();
    raw_apply(&mut problems);
    let Err(ConfigError::Invalid(problems)) = raw.validate(problems) else { panic!("accepted") };
    let text = problems.join("\n");
    for needle in [
        "server.listen",
        "server.max_connections",
        "server.drain_path",
        "sinks.file.fsync",
        "sinks.file.max_file_bytes",
        "sinks.file.sync_lanes: 0 is not from 1 to 16",
        "sinks.dead_letter.sync_lanes: 17 is not from 1 to 16",
        "SPILLWAY_MAX_BODY_BYTES",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

fn raw_apply(problems: &mut Vec<String>) {
    let mut other = RawConfig::default();
    other.apply_env(|k| (k == "SPILLWAY_MAX_BODY_BYTES").then(|| "lots".to_owned()), problems);
}

#[test]
fn the_documented_example_is_valid_and_states_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/spillway.toml");
    let documented = load(Some(&path), no_env).unwrap();
    let embedded = load(None, no_env).unwrap();
    assert_eq!(format!("{documented:?}"), format!("{embedded:?}"));
}

#[test]
fn file_modes_are_octal_and_leave_the_owner_its_access() {
    let config = load(None, no_env).unwrap();
    let file = config.file_sink.unwrap();
    assert_eq!((file.file_mode, file.dir_mode), (0o640, 0o750));
    assert_eq!(file.invalid_dir.as_ref(), Some(&config.dead_letter.dir));
    assert_eq!((config.dead_letter.file_mode, config.dead_letter.dir_mode), (0o640, 0o750));
    let raw = RawConfig::from_toml(
        "[sinks.file]\nfile_mode = \"0600\"\ndir_mode = \"700\"\n\
         [sinks.dead_letter]\nfile_mode = \"0o660\"\n",
    )
    .unwrap();
    let config = raw.validate(Vec::new()).unwrap();
    let file = config.file_sink.unwrap();
    assert_eq!((file.file_mode, file.dir_mode), (0o600, 0o700));
    assert_eq!(config.dead_letter.file_mode, 0o660);
    let raw = RawConfig::from_toml(
        "[sinks.file]\nfile_mode = \"0644x\"\ndir_mode = \"0640\"\n\
         [sinks.dead_letter]\nfile_mode = \"0440\"\ndir_mode = \"01777\"\n",
    )
    .unwrap();
    let Err(ConfigError::Invalid(problems)) = raw.validate(Vec::new()) else { panic!("accepted") };
    let text = problems.join("\n");
    for needle in [
        "sinks.file.file_mode: \"0644x\" is not a permission mode",
        "sinks.file.dir_mode: \"0640\" must grant the owner at least 0700",
        "sinks.dead_letter.file_mode: \"0440\" must grant the owner at least 0600",
        "sinks.dead_letter.dir_mode: \"01777\" is not a permission mode",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn kafka_is_enabled_by_its_brokers_and_validated() {
    let env = |k: &str| match k {
        "SPILLWAY_KAFKA_BROKERS" => Some("127.0.0.1:9092".to_owned()),
        "SPILLWAY_KAFKA_TOPIC" => Some("logs-x".to_owned()),
        _ => None,
    };
    let kafka = load(None, env).unwrap().kafka.unwrap();
    assert_eq!((kafka.brokers.as_str(), kafka.topic.as_str()), ("127.0.0.1:9092", "logs-x"));
    assert_eq!(kafka.compression, pipeline::kafka::Compression::Lz4);
    assert!(load(None, no_env).unwrap().kafka.is_none());

    let raw = RawConfig::from_toml(
        "[sinks.kafka]\ncompression = \"brotli\"\ntopic = \"bad topic\"\n\
         [[sinks.kafka.routes]]\nfield = \"colour\"\nvalue = \"x\"\ntopic = \"t\"\n",
    )
    .unwrap();
    let Err(ConfigError::Invalid(problems)) = raw.validate(Vec::new()) else { panic!("accepted") };
    let text = problems.join("\n");
    for needle in
        ["sinks.kafka.brokers", "sinks.kafka.compression", "sinks.kafka.topic", "routes[0].field"]
    {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }

    let raw = RawConfig::from_toml(
        "[sinks.file]\nenabled = false\n[sinks.kafka]\nbrokers = \"b:1\"\n\
         [sinks.kafka.properties]\n\"socket.timeout.ms\" = \"1000\"\n\
         [[sinks.kafka.routes]]\nfield = \"source\"\nvalue = \"edge\"\ntopic = \"edge-logs\"\n",
    )
    .unwrap();
    let config = raw.validate(Vec::new()).unwrap();
    assert!(config.file_sink.is_none());
    let kafka = config.kafka.unwrap();
    assert_eq!(kafka.properties, vec![("socket.timeout.ms".to_owned(), "1000".to_owned())]);
    assert_eq!(kafka.routes[0].topic, "edge-logs");
}

#[test]
fn each_data_type_has_a_kafka_topic_of_its_own() {
    let raw = RawConfig::from_toml("[sinks.kafka]\nbrokers = \"b:1\"\n").unwrap();
    let topics = raw.validate(Vec::new()).unwrap().kafka.unwrap().data_topics;
    assert_eq!(
        topics.all(),
        ["vercel-speed-insights", "vercel-analytics", "vercel-audit-log", "vercel-traces"]
    );
    let raw = RawConfig::from_toml(
        "[sinks.kafka]\nbrokers = \"b:1\"\n[sinks.kafka.topics]\nanalytics = \"web\"\n",
    )
    .unwrap();
    let kafka = raw.validate(Vec::new()).unwrap().kafka.unwrap();
    assert_eq!(
        (kafka.topic.as_str(), kafka.data_topics.analytics.as_str()),
        ("vercel-logs", "web")
    );
    assert!(kafka.topics().contains(&"web"), "created at start-up like the others");

    let raw = RawConfig::from_toml(
        "[sinks.kafka]\nbrokers = \"b:1\"\n[sinks.kafka.topics]\naudit_log = \"a b\"\nlogs = \"x\"\n",
    );
    assert!(raw.is_err(), "logs have sinks.kafka.topic; unknown keys are refused");
    let raw = RawConfig::from_toml(
        "[sinks.kafka]\nbrokers = \"b:1\"\n[sinks.kafka.topics]\naudit_log = \"a b\"\n",
    )
    .unwrap();
    let Err(ConfigError::Invalid(problems)) = raw.validate(Vec::new()) else { panic!("accepted") };
    assert!(problems.join("\n").contains("sinks.kafka.topics.audit_log"), "{problems:?}");
}

#[test]
fn the_integration_needs_all_three_credentials_and_a_drain_url() {
    assert!(load(None, no_env).unwrap().integration.is_none());
    let env = |k: &str| match k {
        "SPILLWAY_VERCEL_CLIENT_ID" => Some("oac_1".to_owned()),
        "SPILLWAY_VERCEL_CLIENT_SECRET" => Some("hunter2".to_owned()),
        "SPILLWAY_VERCEL_REDIRECT_URL" => Some("https://x.example/cb".to_owned()),
        "SPILLWAY_VERCEL_API_URL" => Some("http://127.0.0.1:1".to_owned()),
        "SPILLWAY_CONTROL_LISTEN" => Some("127.0.0.1:0".to_owned()),
        _ => None,
    };
    let mut raw = RawConfig::from_toml(
        "[integration]\ndrain_url = \"https://logs.example/vercel/logs\"\nproject_env = \"LOG_URL\"\n",
    )
    .unwrap();
    let mut problems = Vec::new();
    raw.apply_env(env, &mut problems);
    let config = raw.validate(problems).unwrap();
    let integration = config.integration.clone().unwrap();
    assert_eq!(integration.client_id, "oac_1");
    assert_eq!(integration.api_url, "http://127.0.0.1:1");
    assert_eq!(integration.listen.port(), 0);
    assert!(integration.create_drain);
    assert_eq!(integration.project_env.as_deref(), Some("LOG_URL"));
    assert!(!format!("{config:?}").contains("hunter2"));

    let raw = RawConfig::from_toml(
        "[integration]\nclient_id = \"oac_1\"\nlisten = \"x\"\nproject_env = \"1 A\"\n",
    )
    .unwrap();
    let Err(ConfigError::Invalid(problems)) = raw.validate(Vec::new()) else { panic!("accepted") };
    let text = problems.join("\n");
    for needle in [
        "integration.client_secret",
        "integration.redirect_url",
        "integration.listen",
        "integration.drain_url",
        "integration.project_env",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn unknown_keys_are_refused() {
    let err = RawConfig::from_toml("[server]\nlisten_addr = \"x\"\n").unwrap_err();
    assert!(err.contains("listen_addr"), "{err}");
}

#[test]
fn secrets_do_not_show_in_debug_output() {
    let raw = RawConfig::from_toml(
        "[vercel]\ndrain_secret = \"hunter2\"\n\
         required_headers = [\"Authorization: Bearer tok-hunter3\"]\n",
    )
    .unwrap();
    assert!(!format!("{raw:?}").contains("hunter"));
    // A header written without its name shows nothing of the value either.
    let nameless =
        RawConfig::from_toml("[vercel]\nrequired_headers = [\"Bearer tok-hunter4\"]\n").unwrap();
    assert!(!format!("{nameless:?}").contains("hunter"), "{nameless:?}");
    let config = raw.validate(Vec::new()).unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("hunter"), "{shown}");
    assert!(shown.contains("authorization"), "{shown}");
}

#[test]
fn required_headers_come_from_the_file_or_the_environment_and_are_checked() {
    let raw = RawConfig::from_toml(
        "[vercel]\nrequired_headers = [\"X-Drain-Token: a\", \"Authorization: Bearer b\"]\n",
    )
    .unwrap();
    let names: Vec<String> = raw
        .validate(Vec::new())
        .unwrap()
        .ingest
        .drain_headers
        .iter()
        .map(|h| h.name().to_owned())
        .collect();
    assert_eq!(names, ["x-drain-token", "authorization"]);

    let env = |k: &str| (k == "SPILLWAY_DRAIN_HEADER").then(|| "X-Token: t1".to_owned());
    let headers = load(None, env).unwrap().ingest.drain_headers;
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0].name(), "x-token");

    let raw = RawConfig::from_toml(
        "[vercel]\nrequired_headers = [\"no colon here\", \"x-vercel-signature: s\", \"ok: v\"]\n",
    )
    .unwrap();
    let Err(ConfigError::Invalid(problems)) = raw.validate(Vec::new()) else { panic!("accepted") };
    let text = problems.join("\n");
    assert!(text.contains("vercel.required_headers[0]: expected"), "{text}");
    assert!(text.contains("vercel.required_headers[1]: x-vercel-signature"), "{text}");
    assert!(!text.contains("[2]"), "{text}");
}

/// Would catch `check-config` printing Kafka secrets (today's derived `Debug` prints every
/// property in clear): the real binary shows each sensitive key, never its value.
#[test]
fn check_config_shows_kafka_property_names_but_never_their_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spillway.toml");
    let secrets = [
        ("sasl.password", "hunter-sasl"),
        ("ssl.key.password", "hunter-key"),
        ("ssl.keystore.password", "hunter-store"),
        ("sasl.jaas.config", "hunter-jaas"),
        ("sasl.oauthbearer.config", "hunter-oauth"),
        ("ssl.key.pem", "hunter-pem"),
    ];
    let mut text = "[sinks.kafka]\nbrokers = \"127.0.0.1:1\"\n[sinks.kafka.properties]\n\
                    \"sasl.username\" = \"alice\"\n"
        .to_owned();
    for (key, value) in secrets {
        text.push_str(&format!("\"{key}\" = \"{value}\"\n"));
    }
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spillway"))
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .env_clear()
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!shown.contains("hunter"), "{shown}");
    assert!(shown.contains("alice"), "{shown}");
    for (key, _) in secrets {
        assert!(shown.contains(key), "{key} missing from {shown}");
    }
}

#[test]
fn tls_files_and_previous_secrets_are_checked_and_secrets_never_shown() {
    let problems = |toml: &str| match RawConfig::from_toml(toml).unwrap().validate(Vec::new()) {
        Err(ConfigError::Invalid(problems)) => problems.join("\n"),
        other => panic!("expected problems, got {other:?}"),
    };
    let half = problems("[server.tls]\ncert_path = \"/nonexistent/cert.pem\"\n");
    assert!(half.contains("server.tls: needs both cert_path and key_path"), "{half}");
    let missing = problems(
        "[server.tls]\ncert_path = \"/nonexistent/cert.pem\"\nkey_path = \"/nonexistent/k.pem\"\n",
    );
    assert!(missing.contains("server.tls: /nonexistent/cert.pem"), "{missing}");
    let alone = problems("[vercel]\nprevious_drain_secrets = [\"hunter5\"]\n");
    assert!(alone.contains("vercel.previous_drain_secrets: set only beside"), "{alone}");
    assert!(!alone.contains("hunter"), "{alone}");

    let raw = RawConfig::from_toml(
        "[vercel]\ndrain_secret = \"new-hunter6\"\nprevious_drain_secrets = [\"old-hunter7\"]\n",
    )
    .unwrap();
    assert!(!format!("{raw:?}").contains("hunter"), "{raw:?}");
    let config = raw.validate(Vec::new()).unwrap();
    assert_eq!(config.ingest.previous_drain_secrets.len(), 1);
    assert!(!format!("{config:?}").contains("hunter"));
}

#[test]
fn trusted_proxies_are_addresses_or_networks_and_each_bad_one_is_named() {
    let raw = RawConfig::from_toml("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\"]\n")
        .unwrap();
    let proxies = raw.validate(Vec::new()).unwrap().ingest.trusted_proxies;
    let shown: Vec<String> = proxies.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["10.0.0.0/8", "127.0.0.1/32"]);
    assert!(load(None, |_| None).unwrap().ingest.trusted_proxies.is_empty());

    let raw =
        RawConfig::from_toml("[server]\ntrusted_proxies = [\"::1\", \"lb\", \"10.0.0.0/40\"]\n")
            .unwrap();
    let Err(ConfigError::Invalid(problems)) = raw.validate(Vec::new()) else { panic!("accepted") };
    let text = problems.join("\n");
    assert!(text.contains("server.trusted_proxies[1]"), "{text}");
    assert!(text.contains("server.trusted_proxies[2]"), "{text}");
    assert!(!text.contains("trusted_proxies[0]"), "{text}");
}

/// 32 bytes of 7, in base64.
const STORE_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

#[test]
fn a_database_url_needs_a_key_and_neither_is_ever_shown() {
    let url = "postgres://spillway:pg-password-123@db.internal:5433/fleet";
    let without_key = load(None, |k| (k == "SPILLWAY_DATABASE_URL").then(|| url.to_owned()));
    let message = without_key.unwrap_err().to_string();
    assert!(message.contains("store.key: required with store.database_url"), "{message}");
    assert!(message.contains("SPILLWAY_STORE_KEY"), "{message}");
    assert!(!message.contains("pg-password-123"), "{message}");

    let env = |k: &str| match k {
        "SPILLWAY_DATABASE_URL" => Some(url.to_owned()),
        "SPILLWAY_STORE_KEY" => Some(STORE_KEY.to_owned()),
        _ => None,
    };
    let config = load(None, env).unwrap();
    let store = config.store.as_ref().expect("a database URL configures the shared store");
    assert_eq!(store.url.expose(), url);
    assert_eq!(store.pool_size, 8);
    assert_eq!(store.query_timeout, std::time::Duration::from_secs(10));
    let printed = format!("{config:#?}");
    assert!(printed.contains("db.internal:5433/fleet"), "{printed}");
    for secret in ["pg-password-123", STORE_KEY] {
        assert!(!printed.contains(secret), "{secret} printed in {printed}");
    }
    assert!(load(None, no_env).unwrap().store.is_none(), "no URL: the files");
}

#[test]
fn bad_store_settings_are_named_without_their_values() {
    let raw = RawConfig::from_toml(
        "[store]\ndatabase_url = \"postgres://u:hunter2@h/d\"\nkey = \"c2hvcnQ=\"\n\
         pool_size = 0\nresync_secs = 0\n",
    )
    .unwrap();
    let message = raw.validate(Vec::new()).unwrap_err().to_string();
    assert!(message.contains("store.key: SPILLWAY_STORE_KEY must be 32 bytes"), "{message}");
    assert!(!message.contains("hunter2") && !message.contains("c2hvcnQ"), "{message}");
    let raw = RawConfig::from_toml(&format!(
        "[store]\ndatabase_url = \"postgres://u:hunter2@h/d\"\nkey = \"{STORE_KEY}\"\n\
         pool_size = 0\nresync_secs = 0\nquery_timeout_secs = 3601\n"
    ))
    .unwrap();
    let message = raw.validate(Vec::new()).unwrap_err().to_string();
    assert!(message.contains("store.pool_size: 0 is out of range"), "{message}");
    assert!(message.contains("store.resync_secs: 0 is out of range"), "{message}");
    assert!(message.contains("store.query_timeout_secs: 3601 is out of range"), "{message}");
    let raw = RawConfig::from_toml("[store]\ndatabase_url = \"mysql://u:hunter2@h/d\"\n").unwrap();
    let message = raw.validate(Vec::new()).unwrap_err().to_string();
    assert!(message.contains("store.database_url: not a postgres:// URL"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn a_database_url_takes_libpq_tls_parameters_and_names_those_it_does_not() {
    let store = |query: &str| {
        RawConfig::from_toml(&format!(
            "[store]\ndatabase_url = \"postgres://u:hunter2@db.internal/d?{query}\"\n\
             key = \"{STORE_KEY}\"\n"
        ))
        .unwrap()
        .validate(Vec::new())
    };
    for query in [
        "sslmode=verify-full&sslrootcert=/etc/spillway/db-ca.pem",
        "sslrootcert=system",
        "sslmode=verify-ca&sslrootcert=/etc/spillway/db-ca.pem",
        "sslmode=require&channel_binding=require",
        "sslmode=disable",
    ] {
        let config = store(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        let printed = format!("{config:#?}");
        assert!(printed.contains("db.internal:5432/d") && !printed.contains("hunter2"));
    }
    for (query, says) in [
        ("sslmode=verify", "store.database_url: sslmode must be disable, allow, prefer"),
        ("sslcert=/c.pem&sslkey=/k.pem", "store.database_url: sslcert is not supported"),
        ("sslmode=verify-ca", "store.database_url: sslmode=verify-ca needs sslrootcert"),
    ] {
        let message = store(query).unwrap_err().to_string();
        assert!(message.contains(says), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}

#[test]
fn the_integration_creates_a_drain_per_listed_type() {
    let base = "[integration]\nclient_id = \"oac_1\"\nclient_secret = \"s\"\n\
                redirect_url = \"https://x.example/cb\"\ndrain_url = \"https://x.example/vercel/logs\"\n";
    let config = RawConfig::from_toml(base).unwrap().validate(Vec::new()).unwrap();
    assert_eq!(config.integration.unwrap().data_types, [control::DataType::Logs]);
    let listed = format!("{base}data_types = [\"logs\", \"speed-insights\", \"traces\"]\n");
    let config = RawConfig::from_toml(&listed).unwrap().validate(Vec::new()).unwrap();
    assert_eq!(
        config.integration.unwrap().data_types,
        [control::DataType::Logs, control::DataType::SpeedInsights, control::DataType::Traces]
    );
    let bad = format!("{base}data_types = [\"logs\", \"metrics\", \"logs\"]\n");
    let message = RawConfig::from_toml(&bad).unwrap().validate(Vec::new()).unwrap_err().to_string();
    assert!(
        message.contains("integration.data_types[1]: \"metrics\" is not a data type"),
        "{message}"
    );
    assert!(message.contains("integration.data_types[2]: logs is listed twice"), "{message}");
}

#[test]
fn a_value_of_the_wrong_type_is_reported_by_its_key_without_the_value() {
    // A secret written where a list or a number belongs: serde's own message quotes it.
    for (toml, key) in [
        (
            "[vercel]\nrequired_headers = \"Authorization: Bearer tok-1234567890\"\n",
            "required_headers",
        ),
        ("[vercel]\nprevious_drain_secrets = \"tok-1234567890\"\n", "previous_drain_secrets"),
        (
            "[sinks.kafka.properties]\n\"sasl.password\" = 1234567890\n",
            "\"sasl.password\" (line 2)",
        ),
        ("[vercel]\nrequired_headers = [\"A: tok-1234567890\", 7]\n", "required_headers (line 2)"),
        // A value going on over lines: what precedes an `=` there is part of a value, not a key.
        ("[vercel]\nprevious_drain_secrets = [\n  \"dG9rLTEyMzQ1Njc4OTA=\", 5,\n]\n", "line 3"),
    ] {
        let e = RawConfig::from_toml(toml).unwrap_err();
        assert!(!e.contains("1234567890") && !e.contains("dG9r"), "the value is shown: {e}");
        assert!(e.contains(key), "{key} is not named: {e}");
        assert!(e.contains("invalid type") && e.contains(", expected "), "{e}");
    }
}
