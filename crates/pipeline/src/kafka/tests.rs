//! The Kafka sink's configuration and its check of a record's size.

use super::message::wire_size;
use super::*;

#[test]
fn compressions_parse_from_their_names() {
    for compression in [
        Compression::Lz4,
        Compression::Zstd,
        Compression::Gzip,
        Compression::Snappy,
        Compression::None,
    ] {
        assert_eq!(compression.as_str().parse::<Compression>(), Ok(compression));
    }
    assert_eq!("zstd".parse::<Compression>(), Ok(Compression::Zstd));
    assert_eq!(
        "brotli".parse::<Compression>().unwrap_err().to_string(),
        r#""brotli" is not one of lz4, zstd, gzip, snappy, none"#
    );
    assert!("LZ4".parse::<Compression>().is_err(), "names are exact");
    assert_eq!(KafkaSinkConfig::new("b:1").compression, Compression::Lz4);
}

#[test]
fn route_fields_parse_from_their_names() {
    for field in [RouteField::Source, RouteField::Level, RouteField::Environment, RouteField::Drain]
    {
        assert_eq!(field.as_str().parse::<RouteField>(), Ok(field));
    }
    assert_eq!("environment".parse::<RouteField>(), Ok(RouteField::Environment));
    assert_eq!(
        "colour".parse::<RouteField>().unwrap_err().to_string(),
        r#""colour" is not one of source, level, environment, drain"#
    );
}

#[test]
fn the_admin_client_gets_the_configured_properties() {
    let mut config = KafkaSinkConfig::new("b:1");
    config.properties =
        vec![("security.protocol".into(), "sasl_ssl".into()), ("sasl.username".into(), "u".into())];
    for client in [config.admin_config(), config.client_config()] {
        assert_eq!(client.get("bootstrap.servers"), Some("b:1"));
        assert_eq!(client.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(client.get("sasl.username"), Some("u"));
    }
    // The properties override the producer's defaults.
    config.properties.push(("acks".into(), "1".into()));
    assert_eq!(config.client_config().get("acks"), Some("1"));
}

#[test]
fn the_producer_is_told_the_compression_by_name() {
    let config = KafkaSinkConfig { compression: Compression::Zstd, ..KafkaSinkConfig::new("b:1") };
    assert_eq!(config.client_config().get("compression.type"), Some("zstd"));
}

/// A log record whose value is `value_len` bytes, with a `projectId` of `key_len`, and `source`
/// and `level`.
fn record_of(value_len: usize, key_len: usize) -> record::Record {
    use record::{FieldSpan, RecordMeta};
    let head = format!(
        r#"{{"projectId":"{}","source":"lambda","level":"info","m":""#,
        "p".repeat(key_len)
    );
    let pad = value_len - head.len() - 2;
    let line = format!("{head}{}\"}}", "x".repeat(pad));
    let span = |name: &str, len: usize| {
        let at = line.find(&format!(r#""{name}":""#)).unwrap() + name.len() + 4;
        FieldSpan::new(at as u32, len as u32, false)
    };
    let meta = RecordMeta {
        project_id: span("projectId", key_len),
        source: span("source", 6),
        level: span("level", 4),
        ..RecordMeta::default()
    };
    assert_eq!(line.len(), value_len);
    record::Record::new(bytes::Bytes::from(line), meta)
}

#[test]
fn a_record_fits_exactly_when_librdkafka_takes_its_message_or_a_few_bytes_less() {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::BaseRecord;
    use record::DataType;

    const MAX: usize = 4096;
    let config = KafkaSinkConfig {
        properties: vec![("message.max.bytes".into(), MAX.to_string())],
        ..KafkaSinkConfig::new("127.0.0.1:1")
    };
    assert_eq!(config.producer_limits(), (MAX, 64 << 20));
    let defaults = KafkaSinkConfig { queue_max_kbytes: 1024, ..KafkaSinkConfig::new("b:1") };
    assert_eq!(defaults.producer_limits(), (DEFAULT_MESSAGE_MAX_BYTES, 1 << 20));
    // Read as librdkafka reads them (`strtol`, any base), and the properties win.
    let mut odd = KafkaSinkConfig::new("b:1");
    odd.properties = vec![
        ("message.max.bytes".into(), "0x2000".into()),
        ("queue.buffering.max.kbytes".into(), "2048".into()),
    ];
    assert_eq!(odd.producer_limits(), (0x2000, 2 << 20));
    // No broker: `send` only queues, after librdkafka's size check.
    let producer: BaseProducer = config.client_config().create().unwrap();
    let drain = "drain-with-a-name";
    let produced = |record: &record::Record| {
        let fields = RecordFields::of(record);
        let headers = OwnedHeaders::new()
            .insert(Header { key: "drain", value: Some(drain) })
            .insert(Header { key: "data_type", value: Some("logs") })
            .insert(Header { key: "source", value: fields.source.as_deref() })
            .insert(Header { key: "level", value: fields.level.as_deref() });
        let message = BaseRecord::<[u8], [u8]>::to("t")
            .payload(record.bytes())
            .key(fields.key())
            .headers(headers);
        match producer.send(message) {
            Ok(()) => true,
            Err((e, _)) => {
                assert_eq!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::MessageSizeTooLarge));
                false
            }
        }
    };
    for key_len in [0, 20, 300] {
        let largest_taken = (200..MAX).rev().find(|&n| produced(&record_of(n, key_len))).unwrap();
        let fitting = |n| {
            let record = record_of(n, key_len);
            let fits = fits_message(&record, drain, DataType::Logs, MAX);
            assert_eq!(fits, wire_size(&record, drain, DataType::Logs) <= MAX, "the quick check");
            fits
        };
        let largest_fitting = (200..MAX).rev().find(|&n| fitting(n)).unwrap();
        assert!(
            largest_fitting <= largest_taken && largest_taken - largest_fitting <= 32,
            "key of {key_len}: librdkafka takes values up to {largest_taken} bytes, the check \
             up to {largest_fitting}"
        );
    }
    producer.purge(rdkafka::producer::PurgeConfig::default().queue());
}
