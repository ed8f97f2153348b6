//! Properties of the decoder that must hold for any input:
//! - the NDJSON and the (pretty-printed) JSON-array form of the same records decode to the same
//!   records, byte for byte, with the same routing fields;
//! - the decoder accepts a line exactly when `serde_json` reads it as an object with a string
//!   `id`, a string `projectId` and a numeric `timestamp`, and then extracts the same values
//!   (numbers too large for an f64 included: JSON's grammar allows them).

use ingest::decode::{decode, PaddedBody};
use proptest::prelude::*;
use std::collections::HashMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::String),
        "[a-z \"\\\\\n\t\u{e9}\u{1F680}]{0,40}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z.]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn vercel_record() -> impl Strategy<Value = Value> {
    (
        "[0-9a-z\"\\\\]{1,20}",
        "prj_[a-zA-Z0-9]{1,10}",
        any::<u32>(),
        prop::option::of(prop_oneof![Just("edge"), Just("lambda"), Just("build")]),
        prop::collection::btree_map("[a-zA-Z]{1,10}", json_value(), 0..6),
    )
        .prop_map(|(id, project, ts, source, extra)| {
            let mut m = Map::new();
            for (k, v) in extra {
                m.insert(k, v);
            }
            m.insert("id".into(), Value::String(id));
            m.insert("projectId".into(), Value::String(project));
            m.insert("timestamp".into(), Value::from(ts));
            if let Some(s) = source {
                m.insert("source".into(), Value::String(s.into()));
            }
            Value::Object(m)
        })
}

/// A decoded record: its bytes, `id`, `projectId` and `source`.
type Summary = (Vec<u8>, Option<String>, Option<String>, Option<String>);

fn summary(body: &[u8]) -> Vec<Summary> {
    let decoded = decode(PaddedBody::from_slice(body));
    assert!(decoded.rejects.is_empty(), "unexpected rejects: {:?}", decoded.rejects);
    decoded
        .records
        .iter()
        .map(|r| {
            let s = |v: Option<std::borrow::Cow<'_, str>>| v.map(|v| v.into_owned());
            (r.bytes().to_vec(), s(r.id()), s(r.project_id()), s(r.source()))
        })
        .collect()
}

/// What serde_json says about one line: `Some((id, projectId))` when it is an acceptable record.
fn serde_verdict(line: &[u8]) -> Option<(String, String)> {
    match serde_json::from_slice::<Value>(line) {
        Ok(v) => {
            let obj = v.as_object()?;
            let id = obj.get("id")?.as_str()?.to_owned();
            let project = obj.get("projectId")?.as_str()?.to_owned();
            obj.get("timestamp")?.as_f64()?;
            Some((id, project))
        }
        // serde_json refuses numbers beyond an f64 (`1e400`); JSON's grammar has no such limit
        // and the decoder keeps them. Read such a line with its values left raw instead.
        Err(e) if e.to_string().starts_with("number out of range") => {
            let fields: HashMap<String, &RawValue> = serde_json::from_slice(line).ok()?;
            let text = |key: &str| serde_json::from_str::<String>(fields.get(key)?.get()).ok();
            let timestamp = fields.get("timestamp")?.get();
            timestamp.starts_with(|c: char| c == '-' || c.is_ascii_digit()).then_some(())?;
            Some((text("id")?, text("projectId")?))
        }
        Err(_) => None,
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

proptest! {
    // 256 cases per run; `PROPTEST_CASES` asks for more (a long search before a change lands).
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn ndjson_and_array_forms_decode_alike(records in prop::collection::vec(vercel_record(), 1..12)) {
        let mut ndjson = Vec::new();
        for r in &records {
            ndjson.extend_from_slice(serde_json::to_string(r).unwrap().as_bytes());
            ndjson.push(b'\n');
        }
        let array = serde_json::to_vec_pretty(&Value::Array(records.clone())).unwrap();
        let from_lines = summary(&ndjson);
        prop_assert_eq!(from_lines.len(), records.len());
        prop_assert_eq!(&from_lines, &summary(&array));
        for ((bytes, id, project, _), r) in from_lines.iter().zip(&records) {
            prop_assert_eq!(bytes, &serde_json::to_vec(r).unwrap());
            prop_assert_eq!(id.as_deref(), r["id"].as_str());
            prop_assert_eq!(project.as_deref(), r["projectId"].as_str());
        }
    }

    #[test]
    fn good_lines_pass_through_unchanged_beside_a_line_that_fails_the_whole_body(
        records in prop::collection::vec(vercel_record(), 1..8),
        at in any::<prop::sample::Index>(),
    ) {
        // Spaced-out lines (pretty JSON on one line), and one with bad UTF-8, which makes stage 1
        // refuse the body as a whole, so every line is decoded on its own.
        let mut lines: Vec<Vec<u8>> = records
            .iter()
            .map(|r| serde_json::to_string_pretty(r).unwrap().replace('\n', " ").into_bytes())
            .collect();
        let poison = at.index(lines.len() + 1);
        lines.insert(poison, b"{\"id\":\"\xff\",\"projectId\":\"p\",\"timestamp\":1}".to_vec());
        let body = lines.join(&b'\n');
        let decoded = decode(PaddedBody::from_slice(&body));
        prop_assert_eq!(decoded.rejects.len(), 1);
        prop_assert_eq!(decoded.rejects[0].reason.code(), "invalid_json");
        lines.remove(poison);
        let out: Vec<&[u8]> = decoded.records.iter().map(|r| r.bytes()).collect();
        let expected: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(out, expected);
    }

    #[test]
    fn verdict_matches_serde_json_on_mutated_lines(
        record in vercel_record(),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..3),
    ) {
        let mut line = serde_json::to_vec(&record).unwrap();
        for (at, byte, op) in cuts {
            let i = at.index(line.len() + 1);
            match op {
                0 if i < line.len() => { line.remove(i); }
                1 => line.insert(i, byte),
                _ if i < line.len() => line[i] = byte,
                _ => {}
            }
        }
        line.retain(|b| *b != b'\n');
        let decoded = decode(PaddedBody::from_slice(&line));
        let ours = decoded.records.first().map(|r| {
            (r.id().unwrap().into_owned(), r.project_id().unwrap().into_owned())
        });
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() || trimmed.first() == Some(&b'[') {
            // Blank lines are skipped and `[` switches to array framing: not line verdicts.
            return Ok(());
        }
        prop_assert_eq!(ours, serde_verdict(&line), "line {:?}", String::from_utf8_lossy(&line));
        prop_assert_eq!(decoded.records.len() + decoded.rejects.len(), 1);
    }
}
