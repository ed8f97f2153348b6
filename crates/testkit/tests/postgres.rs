//! The throwaway PostgreSQL cluster: it serves its URL (and no wrong password), keeps its data
//! across a stop and a start on the same port, and gives each test an isolated database.

use testkit::Postgres;

/// `url` with its password replaced by `password`.
fn with_password(url: &str, right: &str, password: &str) -> String {
    url.replacen(&format!(":{right}@"), &format!(":{password}@"), 1)
}

#[test]
fn a_cluster_serves_its_url_and_refuses_a_wrong_password() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.url();
    assert_eq!(
        url,
        format!("postgres://spillway:{}@127.0.0.1:{}/spillway", pg.password(), pg.port())
    );
    assert_ne!(pg.port(), 5432, "never the system cluster's port");
    let answer = pg.psql(&url, "select current_user || ' ' || current_database()");
    assert_eq!(answer.as_deref(), Ok("spillway spillway"), "log:\n{}", pg.log());

    let refused = pg.psql(&with_password(&url, pg.password(), "wrong"), "select 1");
    let error = refused.expect_err("a wrong password must be refused");
    assert!(error.contains("password authentication failed"), "{error}");
    assert!(!format!("{pg:?}").contains(pg.password()), "Debug shows no password");
}

#[test]
fn data_survives_a_stop_and_a_start_on_the_same_port() {
    let Some(mut pg) = Postgres::start() else { return };
    let url = pg.url();
    pg.psql(&url, "create table kept (n int); insert into kept values (7)").unwrap();
    let port = pg.port();

    pg.stop();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "a stopped cluster refuses connections"
    );
    let error = pg.psql(&url, "select 1").expect_err("no server to answer");
    assert!(error.contains("Connection refused"), "{error}");

    pg.start_again();
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql(&url, "select n from kept").as_deref(), Ok("7"), "log:\n{}", pg.log());
}

#[test]
fn each_created_database_is_isolated() {
    let Some(pg) = Postgres::start() else { return };
    let first = pg.create_database("first");
    let second = pg.create_database("second");
    assert!(first.ends_with(&format!("127.0.0.1:{}/first", pg.port())), "{first}");
    pg.psql(&first, "create table only_here (n int)").unwrap();

    assert_eq!(pg.psql(&first, "select count(*) from only_here").as_deref(), Ok("0"));
    let error = pg.psql(&second, "select count(*) from only_here").unwrap_err();
    assert!(error.contains("does not exist"), "{error}");
    let error = pg.psql(&pg.url(), "select count(*) from only_here").unwrap_err();
    assert!(error.contains("does not exist"), "{error}");
}
