//! `DataType`: what a drain carries. Vercel gives each drain exactly one (its `schemas` key on
//! the API): logs, traces, Speed Insights, Web Analytics or audit logs. A batch has its drain's
//! type; sinks route by it (a Kafka topic, a file directory per type).

use std::fmt;
use std::str::FromStr;

/// A drain's data type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum DataType {
    /// Runtime, build and edge logs (`schemas.log`).
    #[default]
    Logs,
    /// OpenTelemetry traces over OTLP/HTTP (`schemas.trace`).
    Traces,
    /// Web Vitals measurements (`schemas.speed_insights`, `vercel.speed_insights.v1`).
    SpeedInsights,
    /// Page views and custom events (`schemas.analytics`, `vercel.analytics.v1`/`v2`).
    Analytics,
    /// A team's audit log (`schemas.audit_log`, `vercel.audit_log.v1`; Enterprise).
    AuditLog,
}

/// A name that is no data type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownDataType(pub String);

impl fmt::Display for UnknownDataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a data type (logs, traces, speed_insights, analytics, audit_log)",
            self.0
        )
    }
}

impl std::error::Error for UnknownDataType {}

impl DataType {
    /// Every type, in a fixed order (metric labels, tables).
    pub const ALL: [DataType; 5] = [
        DataType::Logs,
        DataType::Traces,
        DataType::SpeedInsights,
        DataType::Analytics,
        DataType::AuditLog,
    ];

    /// The stable name: in configuration, metrics, Kafka headers and stores.
    pub const fn as_str(self) -> &'static str {
        match self {
            DataType::Logs => "logs",
            DataType::Traces => "traces",
            DataType::SpeedInsights => "speed_insights",
            DataType::Analytics => "analytics",
            DataType::AuditLog => "audit_log",
        }
    }

    /// The segment of its receiver paths and of its directory and topic names
    /// (`/vercel/speed-insights`, `vercel-speed-insights`).
    pub const fn slug(self) -> &'static str {
        match self {
            DataType::Logs => "logs",
            DataType::Traces => "traces",
            DataType::SpeedInsights => "speed-insights",
            DataType::Analytics => "analytics",
            DataType::AuditLog => "audit-log",
        }
    }

    /// The key of Vercel's `schemas` object for it.
    pub const fn schema_key(self) -> &'static str {
        match self {
            DataType::Logs => "log",
            DataType::Traces => "trace",
            DataType::SpeedInsights => "speed_insights",
            DataType::Analytics => "analytics",
            DataType::AuditLog => "audit_log",
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataType {
    type Err = UnknownDataType;

    /// Its name or its slug (`speed_insights` or `speed-insights`).
    fn from_str(s: &str) -> Result<DataType, UnknownDataType> {
        DataType::ALL
            .into_iter()
            .find(|t| t.as_str() == s || t.slug() == s)
            .ok_or_else(|| UnknownDataType(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_slugs_round_trip() {
        for t in DataType::ALL {
            assert_eq!(t.as_str().parse::<DataType>(), Ok(t));
            assert_eq!(t.slug().parse::<DataType>(), Ok(t));
        }
        assert_eq!(DataType::default(), DataType::Logs);
        assert_eq!("speed-insights".parse::<DataType>(), Ok(DataType::SpeedInsights));
        assert!("metrics".parse::<DataType>().unwrap_err().to_string().contains("\"metrics\""));
    }
}
