//! Data-driven decoder tests: every `decode/NAME.in` body decodes to `decode/NAME.out`.
//!
//! The expected files are reviewed snapshots. `UPDATE_EXPECT=1 cargo test -p ingest --test
//! decode_cases` rewrites them after a deliberate change; review the diff before committing.

use std::fmt::Write as _;
use std::path::Path;

use ingest::decode::{decode, Decoded, PaddedBody};

fn render(decoded: &Decoded) -> String {
    let mut out = format!("format {:?}\n", decoded.format);
    for r in &decoded.records {
        let field = |v: Option<std::borrow::Cow<'_, str>>| v.map_or("-".into(), |v| v.into_owned());
        writeln!(
            out,
            "record id={} project={} source={} level={} env={}\n  {}",
            field(r.id()),
            field(r.project_id()),
            field(r.source()),
            field(r.level()),
            field(r.environment()),
            String::from_utf8_lossy(r.bytes())
        )
        .unwrap();
    }
    for r in &decoded.rejects {
        writeln!(out, "reject {} @{}\n  {}", r.reason, r.offset, String::from_utf8_lossy(&r.raw))
            .unwrap();
    }
    out
}

fn check(input: &Path) {
    let body = std::fs::read(input).unwrap();
    let actual = render(&decode(PaddedBody::from_slice(&body)));
    let expected_path = input.with_extension("out");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&expected_path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&expected_path)
        .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
    assert_eq!(actual, expected, "decoding {}", input.display());
}

#[test]
fn every_case_decodes_as_expected() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/decode");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "in"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 10, "the case directory lost its cases");
    for input in inputs {
        check(&input);
    }
}
