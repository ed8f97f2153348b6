//! librdkafka properties as an operator writes them (`[sinks.kafka.properties]`): the one rule
//! for which hold secrets (shown redacted by every `Debug`, so `check-config` and logs never
//! print them) and for which weaken what a `200` means (`acks`, idempotence).

use std::collections::BTreeMap;
use std::fmt;

use rdkafka::error::KafkaError;

use crate::kafka::KafkaSinkConfig;

/// What a redacted value is shown as.
pub const REDACTED: &str = "[redacted]";

/// Parts of a property name that mark its value as a secret: passwords, SASL JAAS and OAuth
/// bearer configurations, private keys and key stores inline or by path, tokens, secrets.
const SENSITIVE: [&str; 10] = [
    "password",
    "passphrase",
    "secret",
    "sasl.jaas",
    // Its configuration, client credentials and assertions; the rest (scope, method, endpoint
    // URL) is redacted too rather than kept in a list of what is not secret.
    "sasl.oauthbearer",
    "ssl.key.pem",
    // `sasl.oauthbearer.assertion.private.key.pem` (inline) and its `.passphrase`.
    "private.key",
    "ssl_key",
    "ssl.keystore",
    "token",
];

/// Whether the value of librdkafka property `key` is a secret (case-insensitive, by part).
pub fn is_sensitive(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SENSITIVE.iter().any(|part| key.contains(part))
}

/// `e` as it may be shown or logged. rust-rdkafka's message for a property librdkafka refuses
/// (`ClientConfig`: unknown, mistyped, or not supported by this build, such as the TLS
/// passwords) ends with the property's value, and librdkafka's own description may quote it:
/// here the value is left out of both, whatever the key (a misspelt secret's name is not one
/// `is_sensitive` knows).
pub fn client_error(e: &KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, description, key, value) => {
            let description = match value.is_empty() {
                true => description.clone(),
                false => description.replace(value.as_str(), REDACTED),
            };
            format!("the Kafka client refused property {key:?}: {description}")
        }
        other => other.to_string(),
    }
}

/// The properties that weaken what a `200` means, as (setting, what is set): `acks` (or its
/// alias `request.required.acks`) other than `all`/`-1`, under which the broker acknowledges a
/// record its replicas may not have (`kafka_acks`), and `enable.idempotence` off, under which a
/// retry may duplicate or reorder records (`kafka_idempotence`). The last value of a key wins,
/// as in the producer's configuration.
pub fn weakening(properties: &[(String, String)]) -> Vec<(&'static str, String)> {
    let effective: BTreeMap<String, &str> =
        properties.iter().map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim())).collect();
    let mut found = Vec::new();
    for (key, value) in &effective {
        let lower = value.to_ascii_lowercase();
        match key.as_str() {
            "acks" | "request.required.acks" if lower != "all" && lower != "-1" => {
                found.push(("kafka_acks", format!("{key}={value}")));
            }
            "enable.idempotence" if lower != "true" && lower != "1" => {
                found.push(("kafka_idempotence", format!("{key}={value}")));
            }
            _ => {}
        }
    }
    found
}

/// Shows properties as `{key: value}` with every sensitive value replaced by [`REDACTED`].
pub struct Redacted<'a, I>(pub &'a I);

impl<'a, I, K, V> fmt::Debug for Redacted<'a, I>
where
    &'a I: IntoIterator<Item = &'a (K, V)>,
    K: AsRef<str> + 'a,
    V: AsRef<str> + 'a,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (k, v) in self.0 {
            let shown = if is_sensitive(k.as_ref()) { REDACTED } else { v.as_ref() };
            map.entry(&k.as_ref(), &shown);
        }
        map.finish()
    }
}

impl fmt::Debug for KafkaSinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured without `..`: a field added to the config fails to compile here until
        // it is shown, or deliberately left out, so nothing new can leak by a derived Debug.
        let KafkaSinkConfig {
            brokers,
            topic,
            routes,
            data_topics,
            compression,
            linger_ms,
            batch_bytes,
            queue_max_messages,
            queue_max_kbytes,
            message_timeout,
            create_topics,
            partitions,
            replication_factor,
            properties,
            spool,
        } = self;
        f.debug_struct("KafkaSinkConfig")
            .field("brokers", brokers)
            .field("topic", topic)
            .field("routes", routes)
            .field("data_topics", data_topics)
            .field("compression", compression)
            .field("linger_ms", linger_ms)
            .field("batch_bytes", batch_bytes)
            .field("queue_max_messages", queue_max_messages)
            .field("queue_max_kbytes", queue_max_kbytes)
            .field("message_timeout", message_timeout)
            .field("create_topics", create_topics)
            .field("partitions", partitions)
            .field("replication_factor", replication_factor)
            .field("properties", &Redacted(properties))
            .field("spool", spool)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_recognised_by_their_names() {
        for key in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.keystore.location",
            "ssl.key.pem",
            "sasl.jaas.config",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.client.credentials.client.secret",
            "sasl.oauthbearer.assertion.private.key.pem",
            "sasl.oauthbearer.assertion.private.key.passphrase",
            "SASL.PASSWORD",
        ] {
            assert!(is_sensitive(key), "{key}");
        }
        for key in ["sasl.username", "security.protocol", "acks", "ssl.ca.location"] {
            assert!(!is_sensitive(key), "{key}");
        }
    }

    #[test]
    fn a_refused_property_is_reported_without_its_value() {
        use crate::kafka::{KafkaSink, KafkaSinkConfig};
        let metrics = crate::PipelineMetrics::register(&mut Default::default());
        // Not supported by this build (no TLS in librdkafka), misspelt, and a bad value.
        for (key, value) in [
            ("ssl.key.password", "hunter2-tls"),
            ("sasl.pasword", "hunter2-typo"),
            ("security.protocol", "hunter2-protocol"),
        ] {
            let config = KafkaSinkConfig {
                properties: vec![(key.to_owned(), value.to_owned())],
                ..KafkaSinkConfig::new("127.0.0.1:9")
            };
            let Err(e) = KafkaSink::open(config, &metrics) else { panic!("{key} was taken") };
            let mut shown = format!("{e} {e:?}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                shown.push_str(&format!(" {s} {s:?}"));
                source = s.source();
            }
            assert!(!shown.contains("hunter2"), "{key}'s value shown: {shown}");
            assert!(shown.contains(key), "the property is named: {shown}");
        }
    }

    #[test]
    fn weakening_properties_are_named() {
        let props = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        assert!(weakening(&props(&[("acks", "all"), ("enable.idempotence", "true")])).is_empty());
        assert!(weakening(&props(&[("acks", "-1"), ("linger.ms", "0")])).is_empty());
        let found =
            weakening(&props(&[("acks", "all"), ("acks", "1"), ("enable.idempotence", "false")]));
        let settings: Vec<&str> = found.iter().map(|(s, _)| *s).collect();
        assert_eq!(settings, ["kafka_acks", "kafka_idempotence"]);
        assert_eq!(found[0].1, "acks=1");
        let alias = weakening(&props(&[("request.required.acks", "0")]));
        assert_eq!(alias[0].0, "kafka_acks");
    }

    #[test]
    fn debug_shows_the_keys_but_not_the_secrets() {
        let mut config = KafkaSinkConfig::new("b:1");
        config.properties = vec![
            ("sasl.username".into(), "alice".into()),
            ("sasl.password".into(), "hunter2".into()),
            ("ssl.key.password".into(), "hunter3".into()),
        ];
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter"), "{shown}");
        for part in ["sasl.password", "ssl.key.password", "alice", REDACTED] {
            assert!(shown.contains(part), "{part} missing from {shown}");
        }
    }
}
