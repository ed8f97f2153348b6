//! The install flow against the Vercel API simulator over real HTTP on 127.0.0.1, with
//! `data_types` set: one drain per type, each with its schemas, its delivery variant and its
//! receiver path, registered with its type, and none created twice when the install repeats.

use control::install::Callback;
use control::{DataType, Integration, IntegrationConfig, Secret, Stores};
use serde_json::json;
use vercel_sim::Simulator;

#[tokio::test]
async fn an_install_creates_one_drain_per_configured_type_once() {
    let (addr, sim) = Simulator::start().await.unwrap();
    let config = sim.config();
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::in_dir(dir.path());
    let integration = Integration::new(
        IntegrationConfig {
            client_id: config.client_id.clone(),
            client_secret: Secret::new(config.client_secret.clone()),
            redirect_url: "http://127.0.0.1/callback".to_owned(),
            api_url: format!("http://{addr}"),
            drain_url: Some("http://127.0.0.1:9/vercel/logs".to_owned()),
            data_types: vec![DataType::Logs, DataType::Traces, DataType::Analytics],
            ..IntegrationConfig::default()
        },
        stores.clone(),
    )
    .unwrap();
    for _ in 0..2 {
        let code = sim.issue_code("icfg_types", None);
        let callback = Callback {
            code: Some(Secret::new(code)),
            configuration_id: Some("icfg_types".to_owned()),
            ..Callback::default()
        };
        integration.install(callback).await.unwrap();
    }

    let entries = stores.drains().await.unwrap();
    let mut types: Vec<DataType> = entries.iter().map(|e| e.data_type).collect();
    types.sort();
    assert_eq!(types, [DataType::Logs, DataType::Traces, DataType::Analytics], "once each");
    for entry in &entries {
        let drain = sim.drain(&entry.id).unwrap();
        let slug = entry.data_type.slug();
        let endpoint = format!("http://127.0.0.1:9/vercel/{slug}/{}", entry.path_key);
        let key = entry.data_type.schema_key();
        assert!(drain["schemas"].get(key).is_some(), "{slug}: {drain}");
        assert_eq!(drain["source"]["integrationConfigurationId"], "icfg_types");
        let delivery = &drain["delivery"];
        assert_eq!(delivery["secret"], json!({"kind": "INTEGRATION_SECRET"}), "{slug}");
        if entry.data_type == DataType::Traces {
            assert_eq!(delivery["type"], "otlphttp");
            assert_eq!(delivery["endpoint"], json!({"traces": endpoint}));
        } else {
            assert_eq!(delivery["type"], "http", "{slug}");
            assert_eq!(delivery["endpoint"], endpoint, "{slug}");
        }
    }
}
