//! `deploy/monitoring/` stays true to the service: the alert rules pass `promtool check
//! rules` and their unit tests (`promtool test rules`), and every vttiro metric the rules
//! and the Grafana dashboard use is one `/metrics` announces. (A real Prometheus server
//! evaluates the dashboard's queries against a live service in vttiro-cli's tests.)

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use serde_json::Value;
use vttiro_server::*;

mod common;
use common::*;

struct Idle;

impl JobRunner for Idle {
    fn run(
        &self,
        _request: &RunRequest<'_>,
        _context: &mut dyn RunContext,
    ) -> Result<RunOutput, RunFailure> {
        unreachable!("no job is submitted")
    }
}

fn monitoring_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/monitoring")
}

/// `vttiro_…` names in `text`, with histogram sample suffixes folded onto the family.
fn vttiro_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(found) = text[i..].find("vttiro_") {
        let start = i + found;
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = start
            + text[start..]
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(text.len() - start);
        if !preceded {
            let name = &text[start..end];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            names.insert(family.to_string());
        }
        i = end;
    }
    names
}

fn exposed() -> BTreeSet<String> {
    let service = Service::start(ServerConfig::default(), 1, Arc::new(Idle), None);
    get(&service.url("/metrics"))
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(monitoring_dir())
        .output()
        .expect("run promtool (Debian package `prometheus`, installed by scripts/deps.sh)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let checked = promtool(&["check", "rules", "alerts.yml"]);
    assert!(checked.contains("SUCCESS: 9 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every alert has a unit test that expects it to fire.
    let rules = std::fs::read_to_string(monitoring_dir().join("alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(monitoring_dir().join("alerts.test.yml")).unwrap();
    for alert in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!(
                "alertname: {alert}\n        exp_alerts:\n          - "
            )),
            "{alert} has no test in which it fires"
        );
    }
}

#[test]
fn the_dashboard_and_the_rules_use_only_metrics_the_service_exposes() {
    let exposed = exposed();
    let rules = std::fs::read_to_string(monitoring_dir().join("alerts.yml")).unwrap();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring_dir().join("grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    let mut used = vttiro_names(&rules);
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "{title}: duplicate id"
        );
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        assert!(panel["gridPos"]["w"].as_u64().unwrap() > 0, "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}");
        for target in targets {
            used.extend(vttiro_names(target["expr"].as_str().unwrap()));
        }
    }
    let unknown: Vec<&String> = used.difference(&exposed).collect();
    assert!(unknown.is_empty(), "not exposed by /metrics: {unknown:?}");
    // And the dashboard shows every family the service exposes.
    let shown: BTreeSet<String> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .flat_map(|t| vttiro_names(t["expr"].as_str().unwrap()))
        .collect();
    let missing: Vec<&String> = exposed.difference(&shown).collect();
    assert!(missing.is_empty(), "no panel shows {missing:?}");
}

#[test]
fn the_example_alertmanager_config_passes_amtool_and_routes_every_alert() {
    let output = Command::new("amtool")
        .args(["check-config", "alertmanager.yml"])
        .current_dir(monitoring_dir())
        .output()
        .expect(
            "run amtool (Debian package `prometheus-alertmanager`, installed by scripts/deps.sh)",
        );
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && text.contains("SUCCESS"),
        "{text}"
    );
    // Every alert the rules raise reaches a receiver other than the catch-all by its
    // labels, as amtool's routing test sees it.
    let rules = std::fs::read_to_string(monitoring_dir().join("alerts.yml")).unwrap();
    for alert in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        let severity = if ["VttiroDown", "VttiroNoWorkers"].contains(&alert) {
            "critical"
        } else {
            "warning"
        };
        let routed = Command::new("amtool")
            .args([
                "config",
                "routes",
                "test",
                "--config.file",
                "alertmanager.yml",
            ])
            .arg(format!("alertname={alert}"))
            .arg(format!("severity={severity}"))
            .current_dir(monitoring_dir())
            .output()
            .unwrap();
        let receiver = String::from_utf8_lossy(&routed.stdout).trim().to_string();
        let expected = if severity == "critical" {
            "vttiro-pager"
        } else {
            "vttiro-chat"
        };
        assert_eq!(receiver, expected, "{alert}");
    }
}
