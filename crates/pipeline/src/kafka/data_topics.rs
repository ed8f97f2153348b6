//! Which topic a record goes to: each data type but logs to a topic of its own, logs to the
//! configured topic or the first matching routing rule's.

use record::{DataType, Record};

use super::{KafkaSinkConfig, RouteField};

/// The topic of each data type but logs (whose topic is [`KafkaSinkConfig::topic`], with its
/// routing rules), so that no topic mixes types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataTopics {
    /// Speed Insights (`vercel-speed-insights`).
    pub speed_insights: String,
    /// Web Analytics (`vercel-analytics`).
    pub analytics: String,
    /// Audit logs (`vercel-audit-log`).
    pub audit_log: String,
    /// Traces (`vercel-traces`; not received yet).
    pub traces: String,
}

impl Default for DataTopics {
    /// `vercel-<type slug>` for each type.
    fn default() -> DataTopics {
        let named = |t: DataType| format!("vercel-{}", t.slug());
        DataTopics {
            speed_insights: named(DataType::SpeedInsights),
            analytics: named(DataType::Analytics),
            audit_log: named(DataType::AuditLog),
            traces: named(DataType::Traces),
        }
    }
}

impl DataTopics {
    /// The topic of `data_type`; `None` for logs, which are routed by the rules.
    pub fn of(&self, data_type: DataType) -> Option<&str> {
        match data_type {
            DataType::Logs => None,
            DataType::Traces => Some(&self.traces),
            DataType::SpeedInsights => Some(&self.speed_insights),
            DataType::Analytics => Some(&self.analytics),
            DataType::AuditLog => Some(&self.audit_log),
        }
    }

    /// Every topic, in type order.
    pub fn all(&self) -> [&str; 4] {
        [&self.speed_insights, &self.analytics, &self.audit_log, &self.traces]
    }
}

/// The topic of `record` of a batch of `data_type` from `drain`: its type's topic, or for a log
/// the first matching route's, else the default.
pub(crate) fn route<'a>(
    config: &'a KafkaSinkConfig,
    record: &Record,
    drain: &str,
    data_type: DataType,
) -> &'a str {
    if let Some(topic) = config.data_topics.of(data_type) {
        return topic;
    }
    for route in &config.routes {
        let value = match route.field {
            RouteField::Source => record.source(),
            RouteField::Level => record.level(),
            RouteField::Environment => record.environment(),
            RouteField::Drain => Some(drain.into()),
        };
        if value.as_deref() == Some(route.value.as_str()) {
            return &route.topic;
        }
    }
    &config.topic
}
