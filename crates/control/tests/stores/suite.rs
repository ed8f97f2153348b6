//! The behaviour both backends share: each function gets an empty `Stores` and is run once
//! against the files and once against PostgreSQL (see `both_backends!` in main.rs).

use std::sync::Arc;

use control::registry::DeliveryHeader;
use control::{
    DrainEntry, DrainKind, Installation, InstallationStatus, Secret, StoreError, Stores,
};
use record::DataType;
use tokio::sync::Barrier;

use crate::{by_id, drain, installation, owned_drain};

/// Drains and installations come back exactly as stored: every field, secrets included.
pub(crate) async fn entries_round_trip(stores: Stores) {
    assert_eq!(stores.drains().await.unwrap(), []);
    assert_eq!(stores.installations().await.unwrap(), []);

    let plain = DrainEntry { team_id: None, headers: Vec::new(), ..drain("drn_plain", "pk_plain") };
    let owned = DrainEntry {
        integration_secret: true,
        data_type: control::DataType::SpeedInsights,
        created_at_ms: -1,
        headers: vec![
            DeliveryHeader {
                name: "Authorization".to_owned(),
                value: Secret::new("Bearer \"quoted\" ünïcode, comma"),
            },
            DeliveryHeader { name: "x-extra".to_owned(), value: Secret::new("") },
        ],
        ..owned_drain("drn_owned", "pk_owned", "icfg_rt")
    };
    stores.register_drain(plain.clone()).await.unwrap();
    stores.register_drain(owned.clone()).await.unwrap();
    assert_eq!(by_id(stores.drains().await.unwrap()), [owned.clone(), plain.clone()]);
    assert_eq!(stores.drain("drn_plain").await.unwrap(), Some(plain));
    assert_eq!(stores.drain("drn_none").await.unwrap(), None);
    // An installation's drains by type (`owned` is of speed insights): the traces drain is not
    // that one, whichever comes first.
    let traces = DrainEntry {
        data_type: DataType::Traces,
        ..owned_drain("drn_0traces", "pk_tr", "icfg_rt")
    };
    stores.register_drain(traces.clone()).await.unwrap();
    let of = |id, data_type| stores.drain_of_configuration(id, data_type);
    assert_eq!(of("icfg_rt", DataType::SpeedInsights).await.unwrap(), Some(owned.clone()));
    assert_eq!(of("icfg_rt", DataType::Traces).await.unwrap(), Some(traces));
    assert_eq!(of("icfg_rt", DataType::Logs).await.unwrap(), None);
    assert_eq!(of("icfg_none", DataType::Logs).await.unwrap(), None);
    stores.forget_drain("drn_0traces").await.unwrap();

    let enabled = Installation {
        scopes: vec!["read:drain".to_owned(), "read-write:log-drain".to_owned()],
        ..installation("icfg_rt", InstallationStatus::Enabled)
    };
    let disabled =
        Installation { team_id: None, ..installation("icfg_off", InstallationStatus::Disabled) };
    stores.upsert_installation(enabled.clone()).await.unwrap();
    stores.upsert_installation(disabled.clone()).await.unwrap();
    let mut all = stores.installations().await.unwrap();
    all.sort_by(|a, b| a.configuration_id.cmp(&b.configuration_id));
    assert_eq!(all, [disabled, enabled.clone()]);
    assert_eq!(stores.installation("icfg_rt").await.unwrap(), Some(enabled.clone()));
    assert_eq!(stores.installation("icfg_none").await.unwrap(), None);

    let replaced =
        Installation { access_token: Secret::new("a new token"), scopes: Vec::new(), ..enabled };
    stores.upsert_installation(replaced.clone()).await.unwrap();
    assert_eq!(stores.installation("icfg_rt").await.unwrap(), Some(replaced));
    assert_eq!(stores.installations().await.unwrap().len(), 2);
}

/// Registering an id again replaces its drain (freeing its old path key); a path key another
/// drain has is refused with `Conflict`, and nothing changes.
pub(crate) async fn register_replaces_by_id_and_refuses_a_taken_path_key(stores: Stores) {
    let (a, b) = (drain("drn_a", "pk_a"), drain("drn_b", "pk_b"));
    stores.register_drain(a.clone()).await.unwrap();
    stores.register_drain(b.clone()).await.unwrap();
    let a2 = DrainEntry {
        path_key: "pk_a2".to_owned(),
        secret: Secret::new("another secret"),
        team_id: Some("team_2".to_owned()),
        kind: DrainKind::Integration,
        configuration_id: Some("icfg_a".to_owned()),
        ..a
    };
    stores.register_drain(a2.clone()).await.unwrap();
    assert_eq!(by_id(stores.drains().await.unwrap()), [a2.clone(), b.clone()]);

    let c = drain("drn_c", "pk_a");
    stores.register_drain(c.clone()).await.expect("the replaced drain's old path key is free");
    let before = by_id(stores.drains().await.unwrap());
    assert_eq!(before, [a2.clone(), b, c]);

    for clash in [drain("drn_d", "pk_b"), DrainEntry { path_key: "pk_b".to_owned(), ..a2 }] {
        match stores.register_drain(clash.clone()).await {
            Err(StoreError::Conflict { path_key }) => assert_eq!(path_key, "pk_b"),
            other => panic!("{} onto a taken path key: {other:?}", clash.id),
        }
        assert_eq!(by_id(stores.drains().await.unwrap()), before, "nothing changed");
    }
}

/// Drains registered at once from many tasks all land; two ids racing for one path key give
/// exactly one success and one `Conflict`.
pub(crate) async fn concurrent_registers_all_land_and_one_path_key_wins_once(stores: Stores) {
    const TASKS: usize = 16;
    let start = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let (stores, start) = (stores.clone(), Arc::clone(&start));
            tokio::spawn(async move {
                start.wait().await;
                stores.register_drain(drain(&format!("drn_{i:02}"), &format!("pk_{i:02}"))).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("a distinct drain registers");
    }
    let ids: Vec<String> =
        by_id(stores.drains().await.unwrap()).into_iter().map(|e| e.id).collect();
    let expected: Vec<String> = (0..TASKS).map(|i| format!("drn_{i:02}")).collect();
    assert_eq!(ids, expected, "no registration lost");

    for round in 0..4 {
        let path_key = format!("pk_race_{round}");
        let start = Arc::new(Barrier::new(2));
        let racers: Vec<_> = ["x", "y"]
            .into_iter()
            .map(|side| {
                let (stores, start) = (stores.clone(), Arc::clone(&start));
                let entry = drain(&format!("drn_race_{round}_{side}"), &path_key);
                tokio::spawn(async move {
                    start.wait().await;
                    (entry.id.clone(), stores.register_drain(entry).await)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for racer in racers {
            match racer.await.unwrap() {
                (id, Ok(())) => winners.push(id),
                (_, Err(StoreError::Conflict { path_key: key })) => assert_eq!(key, path_key),
                (id, Err(e)) => panic!("{id}: {e}"),
            }
        }
        let holders: Vec<String> = stores
            .drains()
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.path_key == path_key)
            .map(|e| e.id)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        assert_eq!(holders, winners, "round {round}: the winner holds the path key");
    }
}

/// Forgetting a drain returns it once, then `None`.
pub(crate) async fn forget_returns_the_drain_once(stores: Stores) {
    let (a, b) = (drain("drn_a", "pk_a"), owned_drain("drn_b", "pk_b", "icfg_b"));
    stores.register_drain(a.clone()).await.unwrap();
    stores.register_drain(b.clone()).await.unwrap();
    assert_eq!(stores.forget_drain("drn_a").await.unwrap(), Some(a));
    assert_eq!(stores.forget_drain("drn_a").await.unwrap(), None);
    assert_eq!(stores.drain("drn_a").await.unwrap(), None);
    assert_eq!(stores.forget_drain("drn_never").await.unwrap(), None);
    assert_eq!(stores.drains().await.unwrap(), [b]);
}

/// `modify_installation` changes one installation (no update lost to a concurrent one);
/// `mark_disabled` disables; `the_enabled` finds the single enabled (or named) one.
pub(crate) async fn installations_change_atomically_and_the_enabled_one_is_found(stores: Stores) {
    assert_eq!(stores.the_enabled(None).await.unwrap(), None, "none stored");
    let one = installation("icfg_one", InstallationStatus::Enabled);
    stores.upsert_installation(one.clone()).await.unwrap();
    assert_eq!(stores.the_enabled(None).await.unwrap(), Some(one.clone()));
    assert_eq!(stores.the_enabled(Some("icfg_one")).await.unwrap(), Some(one.clone()));
    assert_eq!(stores.the_enabled(Some("icfg_other")).await.unwrap(), None);
    let two = installation("icfg_two", InstallationStatus::Enabled);
    stores.upsert_installation(two.clone()).await.unwrap();
    assert_eq!(stores.the_enabled(None).await.unwrap(), None, "two enabled: not one");
    assert_eq!(stores.the_enabled(Some("icfg_two")).await.unwrap(), Some(two));

    const TASKS: usize = 8;
    let start = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let (stores, start) = (stores.clone(), Arc::clone(&start));
            tokio::spawn(async move {
                start.wait().await;
                stores
                    .modify_installation("icfg_one", move |i_| i_.scopes.push(format!("s{i}")))
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().unwrap(), "icfg_one is stored");
    }
    let mut modified = stores.installation("icfg_one").await.unwrap().unwrap();
    modified.scopes.sort();
    let scopes: Vec<String> = (0..TASKS).map(|i| format!("s{i}")).collect();
    assert_eq!(modified, Installation { scopes, ..one }, "every change, nothing else");

    assert!(!stores.modify_installation("icfg_none", |i| i.scopes.clear()).await.unwrap());
    assert!(!stores.mark_disabled("icfg_none").await.unwrap());
    assert_eq!(stores.installations().await.unwrap().len(), 2, "nothing created");

    assert!(stores.mark_disabled("icfg_two").await.unwrap());
    assert!(stores.mark_disabled("icfg_two").await.unwrap(), "still stored");
    let two = stores.installation("icfg_two").await.unwrap().unwrap();
    assert_eq!(two.status, InstallationStatus::Disabled);
    assert_eq!(two.access_token.expose(), "token-of-icfg_two", "only the status changed");
    assert_eq!(stores.the_enabled(Some("icfg_two")).await.unwrap(), None);
    let the_one = stores.the_enabled(None).await.unwrap().expect("one enabled left");
    assert_eq!(the_one.configuration_id, "icfg_one");
}

/// Removing a configuration removes its installation and exactly its drains; again, nothing.
pub(crate) async fn remove_configuration_takes_only_its_drains_and_is_idempotent(stores: Stores) {
    let kept = [
        owned_drain("drn_3", "pk_3", "icfg_keep"),
        drain("drn_4", "pk_4"),
        owned_drain("drn_5", "pk_5", "icfg_gone_not"),
    ];
    let gone =
        [owned_drain("drn_1", "pk_1", "icfg_gone"), owned_drain("drn_2", "pk_2", "icfg_gone")];
    for entry in gone.iter().chain(&kept) {
        stores.register_drain(entry.clone()).await.unwrap();
    }
    let keep = installation("icfg_keep", InstallationStatus::Enabled);
    stores
        .upsert_installation(installation("icfg_gone", InstallationStatus::Enabled))
        .await
        .unwrap();
    stores.upsert_installation(keep.clone()).await.unwrap();

    assert_eq!(stores.remove_configuration("icfg_gone").await.unwrap(), (true, 2));
    assert_eq!(by_id(stores.drains().await.unwrap()), kept);
    assert_eq!(stores.installations().await.unwrap(), std::slice::from_ref(&keep));
    assert_eq!(stores.drain_of_configuration("icfg_gone", DataType::Logs).await.unwrap(), None);

    assert_eq!(stores.remove_configuration("icfg_gone").await.unwrap(), (false, 0));
    assert_eq!(by_id(stores.drains().await.unwrap()), kept, "nothing more removed");
    assert_eq!(stores.installations().await.unwrap(), [keep]);
}
