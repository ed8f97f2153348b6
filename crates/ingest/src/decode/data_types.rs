//! The data types besides logs, as the decoder checks them: a record must carry its drain's
//! `schema` and its type's few required fields (DRAINS.md lists them); a record of another type
//! is refused as `wrong_data_type`, never stored with the drain's own.
//!
//! The fields are found by the same structural walk as a log's ([`Walker::object`]); only their
//! presence and kind are checked here, so these types decode as fast as logs.

use record::{DataType, RejectReason};

use super::walk::{Fields, Walker};

impl Fields {
    /// Why a record of a drain of `data_type` is refused, if it is: of another type, or missing
    /// a field its type requires. Logs cost one more test than before the other types existed.
    pub(crate) fn check(&self, w: &Walker<'_>, data_type: DataType) -> Option<RejectReason> {
        if data_type == DataType::Logs {
            // Log records carry no `schema`; every other type's do.
            return match self.schema.k {
                Some(_) => Some(RejectReason::WrongDataType),
                None => self.missing(),
            };
        }
        let Some(k) = self.schema.k else {
            // A record with a log's three fields is a log sent to the wrong drain.
            let is_log = self.id.k.is_some() && self.has_timestamp;
            return Some(if is_log {
                RejectReason::WrongDataType
            } else {
                RejectReason::MissingSchema
            });
        };
        let Some(schema) = w.text(k, self.schema.escaped) else {
            return Some(RejectReason::UnknownSchema);
        };
        match schema_type(&schema) {
            Some((t, _)) if t != data_type => return Some(RejectReason::WrongDataType),
            Some((_, true)) => {}
            _ => return Some(RejectReason::UnknownSchema),
        }
        self.missing_for(w, data_type)
    }

    /// The first field a record of a non-log `data_type` lacks.
    fn missing_for(&self, w: &Walker<'_>, data_type: DataType) -> Option<RejectReason> {
        let needs = |present: bool, reason| (!present).then_some(reason);
        match data_type {
            DataType::SpeedInsights => {
                needs(self.project_id.k.is_some(), RejectReason::MissingProjectId)
                    .or_else(|| {
                        needs(self.metric_type.k.is_some(), RejectReason::MissingMetricType)
                    })
                    .or_else(|| needs(self.has_value, RejectReason::MissingValue))
                    .or_else(|| {
                        let ok = self.timestamp_text.k.is_some_and(|k| {
                            !self.timestamp_text.escaped && is_timestamp_text(w.raw_string(k))
                        });
                        needs(ok, RejectReason::MissingTimestamp)
                    })
            }
            DataType::Analytics => {
                needs(self.project_id.k.is_some(), RejectReason::MissingProjectId)
                    .or_else(|| needs(self.event_type.k.is_some(), RejectReason::MissingEventType))
                    .or_else(|| needs(self.has_timestamp, RejectReason::MissingTimestamp))
            }
            DataType::AuditLog => needs(self.id.k.is_some(), RejectReason::MissingId)
                .or_else(|| needs(self.has_timestamp, RejectReason::MissingTimestamp)),
            DataType::Logs | DataType::Traces => Some(RejectReason::WrongDataType),
        }
    }
}

/// The data type a `schema` value names (`vercel.<schemas key>.<version>`), and whether the
/// version is one this receiver knows.
fn schema_type(schema: &[u8]) -> Option<(DataType, bool)> {
    let rest = schema.strip_prefix(b"vercel.")?;
    let t = DataType::ALL.into_iter().find(|t| {
        rest.strip_prefix(t.schema_key().as_bytes()).is_some_and(|v| v.first() == Some(&b'.'))
    })?;
    let version = &rest[t.schema_key().len() + 1..];
    let known = match t {
        // Web Analytics' v2 (2026); docs before it, and Vercel's CLI, say v1.
        DataType::Analytics => version == b"v1" || version == b"v2",
        _ => version == b"v1",
    };
    Some((t, known))
}

/// Speed Insights' `timestamp`: RFC 3339 (`2023-09-14T15:30:00.000Z`, `T` or a space between
/// date and time) or, as one open-source receiver accepts, a zoneless `2026-07-29 13:45:30`
/// taken as UTC.
pub(crate) fn is_timestamp_text(t: &[u8]) -> bool {
    let num = |from: usize, len: usize, max: u32| -> bool {
        t.get(from..from + len).is_some_and(|d| {
            d.iter().all(u8::is_ascii_digit)
                && d.iter().fold(0u32, |n, b| n * 10 + u32::from(b - b'0')) <= max
        })
    };
    let date = num(0, 4, 9999)
        && t.get(4) == Some(&b'-')
        && num(5, 2, 12)
        && t.get(7) == Some(&b'-')
        && num(8, 2, 31)
        && t[5..7] != *b"00"
        && t[8..10] != *b"00";
    let sep = t.get(10).copied();
    let time = matches!(sep, Some(b'T' | b't' | b' '))
        && num(11, 2, 23)
        && t.get(13) == Some(&b':')
        && num(14, 2, 59)
        && t.get(16) == Some(&b':')
        && num(17, 2, 60);
    if !(date && time) {
        return false;
    }
    let mut i = 19;
    if t.get(i) == Some(&b'.') {
        let digits = t[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        i += 1 + digits;
    }
    match &t[i..] {
        [] => sep == Some(b' '),
        [b'Z' | b'z'] => true,
        [b'+' | b'-', ..] => {
            t.len() == i + 6 && num(i + 1, 2, 23) && t[i + 3] == b':' && num(i + 4, 2, 59)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use record::{DataType, RejectReason};

    use super::is_timestamp_text;
    use crate::decode::{decode_as, PaddedBody};

    const SPEED: &str = r#"{"schema":"vercel.speed_insights.v1","timestamp":"2023-09-14T15:30:00.000Z","projectId":"prj_a","metricType":"LCP","value":1.5,"deviceId":12345678901234567890}"#;
    const ANALYTICS: &str = r#"{"schema":"vercel.analytics.v2","eventType":"pageview","timestamp":1694705400000,"projectId":"prj_a","eventData":"{\"a\":1}"}"#;
    const AUDIT: &str = r#"{"schema":"vercel.audit_log.v1","id":"evt_1","teamId":"team_a","action":"project.created","timestamp":1694705400000,"actor":{"type":"user","id":"u1"}}"#;
    const LOG: &str = r#"{"id":"1","projectId":"prj_a","timestamp":1694705400000,"message":"hi"}"#;

    /// The reason of each line of `lines` on a drain of `t`; `None` for accepted.
    fn reasons(t: DataType, lines: &[&str]) -> Vec<Option<RejectReason>> {
        let body = lines.join("\n");
        let decoded = decode_as(PaddedBody::from_slice(body.as_bytes()), t);
        let mut out = vec![None; lines.len()];
        for reject in &decoded.rejects {
            let line = body[..reject.offset].matches('\n').count();
            out[line] = Some(reject.reason);
        }
        assert_eq!(decoded.records.len(), out.iter().filter(|r| r.is_none()).count());
        out
    }

    #[test]
    fn each_type_accepts_its_own_records_and_refuses_the_others() {
        let all = [LOG, SPEED, ANALYTICS, AUDIT];
        let wrong = Some(RejectReason::WrongDataType);
        for (i, t) in
            [DataType::Logs, DataType::SpeedInsights, DataType::Analytics, DataType::AuditLog]
                .into_iter()
                .enumerate()
        {
            let expected: Vec<_> = (0..4).map(|j| if i == j { None } else { wrong }).collect();
            assert_eq!(reasons(t, &all), expected, "{t}");
        }
    }

    #[test]
    fn json_arrays_are_checked_the_same_way() {
        let body =
            format!("[{SPEED},\n  {LOG} , {}]", SPEED.replace(r#""value":1.5"#, r#""value":"x""#));
        let decoded = decode_as(PaddedBody::from_slice(body.as_bytes()), DataType::SpeedInsights);
        assert_eq!(decoded.records.len(), 1);
        assert_eq!(decoded.records[0].bytes(), SPEED.as_bytes());
        assert_eq!(decoded.records[0].project_id().as_deref(), Some("prj_a"));
        let reasons: Vec<_> = decoded.rejects.iter().map(|r| r.reason).collect();
        assert_eq!(reasons, [RejectReason::WrongDataType, RejectReason::MissingValue]);
    }

    #[test]
    fn missing_fields_have_their_own_reasons() {
        use RejectReason::*;
        let cut = |record: &str, field: &str, with: &str| record.replacen(field, with, 1);
        let speed = [
            (cut(SPEED, r#""schema":"vercel.speed_insights.v1","#, ""), MissingSchema),
            (cut(SPEED, "speed_insights.v1", "speed_insights.v9"), UnknownSchema),
            (cut(SPEED, r#""projectId":"prj_a","#, ""), MissingProjectId),
            (cut(SPEED, r#""metricType":"LCP","#, r#""metricType":1,"#), MissingMetricType),
            (cut(SPEED, r#""value":1.5,"#, ""), MissingValue),
            (cut(SPEED, "2023-09-14T15:30:00.000Z", "yesterday"), MissingTimestamp),
            (cut(SPEED, r#""2023-09-14T15:30:00.000Z""#, "1694705400000"), MissingTimestamp),
        ];
        let analytics = [
            (cut(ANALYTICS, r#""eventType":"pageview","#, ""), MissingEventType),
            (cut(ANALYTICS, "1694705400000", r#""2023-09-14T15:30:00Z""#), MissingTimestamp),
            (cut(ANALYTICS, r#""projectId":"prj_a","#, ""), MissingProjectId),
            (cut(ANALYTICS, "analytics.v2", "audit_log.v1"), WrongDataType),
        ];
        let audit = [
            (cut(AUDIT, r#""id":"evt_1","#, ""), MissingId),
            (cut(AUDIT, "1694705400000", "null"), MissingTimestamp),
            (cut(AUDIT, "vercel.audit_log.v1", "custom"), UnknownSchema),
        ];
        let cases = speed
            .map(|c| (DataType::SpeedInsights, c))
            .into_iter()
            .chain(analytics.map(|c| (DataType::Analytics, c)))
            .chain(audit.map(|c| (DataType::AuditLog, c)));
        for (t, (record, reason)) in cases {
            assert_eq!(reasons(t, &[&record]), [Some(reason)], "{t}: {record}");
        }
        // A schema-less record that is not a log lacks its schema; one with a log's fields is a log.
        assert_eq!(reasons(DataType::Analytics, &[r#"{"projectId":"p"}"#]), [Some(MissingSchema)]);
        assert_eq!(reasons(DataType::AuditLog, &[LOG]), [Some(WrongDataType)]);
    }

    #[test]
    fn analytics_v1_and_escaped_schemas_are_accepted() {
        let v1 = ANALYTICS.replace("analytics.v2", "analytics.v1");
        let escaped = ANALYTICS.replace("analytics.v2", r"analytics\u002ev2");
        assert_eq!(reasons(DataType::Analytics, &[&v1, &escaped]), [None, None]);
    }

    #[test]
    fn speed_insights_timestamps_are_rfc_3339_or_zoneless_utc() {
        for ok in [
            "2023-09-14T15:30:00.000Z",
            "2023-09-14T15:30:00Z",
            "2023-09-14t15:30:00+02:00",
            "2023-09-14 15:30:00",
            "2026-07-29 13:45:30.25",
            "2016-12-31T23:59:60-00:30",
        ] {
            assert!(is_timestamp_text(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "2023-09-14",
            "2023-09-14T15:30:00",
            "2023-13-14T15:30:00Z",
            "2023-00-14T15:30:00Z",
            "2023-09-14T24:30:00Z",
            "2023-09-14T15:30:00.Z",
            "2023-09-14T15:30:00+0200",
            "2023-09-14T15:30:00Zjunk",
            "1694705400000",
        ] {
            assert!(!is_timestamp_text(bad.as_bytes()), "{bad}");
        }
    }
}
