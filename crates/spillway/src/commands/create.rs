//! `spillway drains create`'s arguments checked and turned into a drain to create: the type's
//! delivery (`http` with encoding and compression for the JSON types, `otlphttp` with `proto`
//! or `json` for traces), sampling rules, the log filter and the delivery headers. A flag that
//! does not fit the type is a usage error before anything is sent.

use control::drains::{Endpoint, NewDrain};
use control::model::{Compression, Encoding, SamplingRule};
use control::registry::DeliveryHeader;
use control::{DataType, Secret};
use serde_json::json;

use super::failure::Failure;
use super::{CreateArgs, EncodingArg, EnvironmentArg, SourceArg};

/// Vercel takes at most this many sampling rules per drain.
const MAX_SAMPLING_RULES: usize = 10;

/// `drains create`'s arguments as a drain to create.
pub(super) fn new_drain(args: CreateArgs) -> Result<NewDrain, Failure> {
    let data_type = args.data_type;
    let logs_only = !args.sources.is_empty() || !args.environments.is_empty();
    if logs_only && data_type != DataType::Logs {
        return Err(Failure::Usage(format!(
            "--source and --environment filter log drains only, not {} drains",
            data_type.slug()
        )));
    }
    if args.gzip && data_type == DataType::Traces {
        return Err(Failure::Usage(
            "--gzip: trace drains deliver over OTLP/HTTP, which has no compression setting"
                .to_owned(),
        ));
    }
    Ok(NewDrain {
        name: args.name,
        endpoint: Endpoint::Given(args.url),
        project_ids: args.projects,
        encoding: encoding(data_type, args.encoding)?,
        compression: if args.gzip { Compression::Gzip } else { Compression::None },
        headers: delivery_headers(&args.headers)?,
        filter: filter(&args.sources, &args.environments),
        sampling: sampling(&args.samples)?,
        configuration_id: None,
        data_type,
    })
}

/// The body format: `proto` or `json` for traces (default `proto`), `ndjson` or `json` for the
/// JSON types (default `ndjson`).
fn encoding(data_type: DataType, arg: Option<EncodingArg>) -> Result<Encoding, Failure> {
    let traces = data_type == DataType::Traces;
    match (traces, arg) {
        (true, None | Some(EncodingArg::Proto)) => Ok(Encoding::Proto),
        (false, None | Some(EncodingArg::Ndjson)) => Ok(Encoding::Ndjson),
        (_, Some(EncodingArg::Json)) => Ok(Encoding::Json),
        (true, Some(EncodingArg::Ndjson)) => {
            Err(Failure::Usage("--encoding: trace drains take proto or json".to_owned()))
        }
        (false, Some(EncodingArg::Proto)) => Err(Failure::Usage(format!(
            "--encoding: {} drains take ndjson or json; proto is for traces",
            data_type.slug()
        ))),
    }
}

/// The `--sample RATE[:ENV[:PATH]]` arguments as head-sampling rules.
fn sampling(args: &[String]) -> Result<Vec<SamplingRule>, Failure> {
    if args.len() > MAX_SAMPLING_RULES {
        return Err(Failure::Usage(format!("--sample: at most {MAX_SAMPLING_RULES} rules")));
    }
    args.iter().map(|arg| sampling_rule(arg)).collect()
}

fn sampling_rule(arg: &str) -> Result<SamplingRule, Failure> {
    let usage = |why: &str| Failure::Usage(format!("--sample {arg:?}: {why}"));
    let mut parts = arg.splitn(3, ':');
    let rate = parts
        .next()
        .and_then(|r| r.trim().parse::<f64>().ok())
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| usage("RATE must be a number from 0 to 1"))?;
    let env = match parts.next().map(str::trim) {
        None | Some("") => None,
        Some(env @ ("production" | "preview")) => Some(env.to_owned()),
        Some(_) => return Err(usage("ENV must be production or preview")),
    };
    let path = match parts.next().map(str::trim) {
        None | Some("") => None,
        Some(path) if path.starts_with('/') => Some(path.to_owned()),
        Some(_) => return Err(usage("PATH must start with /")),
    };
    Ok(SamplingRule::head(rate, env, path))
}

fn filter(sources: &[SourceArg], environments: &[EnvironmentArg]) -> Option<serde_json::Value> {
    if sources.is_empty() && environments.is_empty() {
        return None;
    }
    let mut basic = json!({"type": "basic"});
    if !sources.is_empty() {
        basic["log"] = json!({"sources": sources});
    }
    if !environments.is_empty() {
        basic["deployment"] = json!({"environments": environments});
    }
    Some(json!({"version": "v2", "filter": basic}))
}

/// The `--header NAME: VALUE` arguments, each checked as the receiver will check it. A bad
/// one is a usage error that names the header, never its value.
fn delivery_headers(args: &[String]) -> Result<Vec<DeliveryHeader>, Failure> {
    let usage = |e: ingest::InvalidHeader| Failure::Usage(format!("--header: {e}"));
    let mut headers: Vec<DeliveryHeader> = Vec::new();
    for arg in args {
        let (name, value) =
            arg.split_once(':').ok_or(ingest::InvalidHeader::Form).map_err(usage)?;
        let checked = ingest::RequiredHeader::new(name, value).map_err(usage)?;
        if headers.iter().any(|h| h.name.eq_ignore_ascii_case(checked.name())) {
            return Err(Failure::Usage(format!("--header: {} is given twice", checked.name())));
        }
        headers.push(DeliveryHeader {
            name: name.trim().to_owned(),
            value: Secret::new(value.trim()),
        });
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_carries_sources_and_environments() {
        assert_eq!(filter(&[], &[]), None);
        let f = filter(&[SourceArg::Lambda], &[EnvironmentArg::Production]).unwrap();
        assert_eq!(f["version"], "v2");
        assert_eq!(f["filter"]["log"]["sources"], json!(["lambda"]));
        assert_eq!(f["filter"]["deployment"]["environments"], json!(["production"]));
    }

    #[test]
    fn sample_rules_parse_rate_env_and_path() {
        let rule = |env: Option<&str>, path: Option<&str>| {
            SamplingRule::head(0.25, env.map(str::to_owned), path.map(str::to_owned))
        };
        assert_eq!(sampling_rule("0.25").unwrap(), rule(None, None));
        assert_eq!(sampling_rule("0.25:preview").unwrap(), rule(Some("preview"), None));
        assert_eq!(sampling_rule("0.25::/api").unwrap(), rule(None, Some("/api")));
        assert_eq!(
            sampling_rule("0.25:production:/a:b").unwrap(),
            rule(Some("production"), Some("/a:b"))
        );
        for bad in ["", "1.5", "-0.1", "half", "0.5:dev", "0.5:preview:api"] {
            assert!(sampling_rule(bad).is_err(), "{bad:?}");
        }
        assert!(sampling(&vec!["1".to_owned(); 11]).is_err());
    }

    #[test]
    fn encodings_suit_the_type() {
        assert_eq!(encoding(DataType::Traces, None).unwrap(), Encoding::Proto);
        assert_eq!(encoding(DataType::Traces, Some(EncodingArg::Json)).unwrap(), Encoding::Json);
        assert!(encoding(DataType::Traces, Some(EncodingArg::Ndjson)).is_err());
        assert_eq!(encoding(DataType::Analytics, None).unwrap(), Encoding::Ndjson);
        assert!(encoding(DataType::AuditLog, Some(EncodingArg::Proto)).is_err());
    }
}
