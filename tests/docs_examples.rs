//! The examples in README.md and docs/*.md are checked, so the docs cannot drift from the code.
//!
//! The convention (docs/development.md, "Examples in the docs are tested"), by the fence's
//! info string:
//!
//! - ` ```json ` — a whole filter configuration: parsed and validated by the crate's own loader
//!   (`Config::parse_with_env`, every environment variable it names set to a test value);
//! - ` ```yaml envoy ` — a whole Envoy file: `envoy --mode validate` with the built filter (the
//!   `.wasm` named by its `filename:`, the `.so` found through
//!   `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`), and the filter configuration in it parsed as above;
//! - ` ```json fragment `, ` ```yaml fragment ` — part of a file, or a file of another kind (a
//!   Kubernetes object, a revocation list): shown, not checked alone.
//!
//! A `yaml` block with neither word is refused here, so a new example is checked or marked.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use cognito_edge_auth::config::Config;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What every environment variable a configuration names holds in the checks: 32 bytes in
/// base64, which is also a usable client secret.
const TEST_ENV_VALUE: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    /// `file:line` of the opening fence.
    at: String,
    lang: String,
    /// The word after the language: `envoy`, `fragment`, or none.
    kind: Option<String>,
    text: String,
}

/// The fenced blocks of a Markdown text, indented ones (in lists) included, with the fence's
/// indentation taken off their lines.
fn blocks_of(file: &str, markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let trimmed = line.trim_start();
        let Some(info) = trimmed.strip_prefix("```") else {
            continue;
        };
        let indent = line.len() - trimmed.len();
        let mut words = info.split_whitespace();
        let lang = words.next().unwrap_or_default().to_string();
        let kind = words.next().map(str::to_string);
        let mut text = String::new();
        for (_, body) in lines.by_ref() {
            if body.trim() == "```" {
                break;
            }
            text.push_str(body.get(indent..).unwrap_or(body.trim_start()));
            text.push('\n');
        }
        blocks.push(Block {
            at: format!("{file}:{}", n + 1),
            lang,
            kind,
            text,
        });
    }
    blocks
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md, in a stable order.
fn doc_files() -> Vec<String> {
    let mut files = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| format!("docs/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The JSON and YAML blocks of every doc.
fn examples() -> Vec<Block> {
    doc_files()
        .iter()
        .flat_map(|f| blocks_of(f, &std::fs::read_to_string(root().join(f)).unwrap()))
        .filter(|b| matches!(b.lang.as_str(), "json" | "yaml" | "yml"))
        .collect()
}

/// The crate's loader on a filter configuration: the error, naming the field, if refused.
fn load(json: &str) -> Result<(), String> {
    Config::parse_with_env(json.as_bytes(), &|_| Some(TEST_ENV_VALUE.to_string()))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Every filter configuration in an Envoy file (the wasm filter's `configuration`, the dynamic
/// module's `filter_config`), as text.
fn filter_configs(envoy: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect_filter_configs(envoy, &mut found);
    found
}

fn collect_filter_configs(v: &Value, found: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for key in ["configuration", "filter_config"] {
                if let Some(text) = map.get(key).and_then(|c| c["value"].as_str()) {
                    found.push(text.to_string());
                }
            }
            map.values().for_each(|v| collect_filter_configs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_filter_configs(v, found)),
        _ => {}
    }
}

/// The problems with one example, per the convention: empty when it is good.
fn check(block: &Block) -> Vec<String> {
    let at = &block.at;
    match (block.lang.as_str(), block.kind.as_deref()) {
        (_, Some("fragment")) => Vec::new(),
        ("json", None) => match load(&block.text) {
            Ok(()) => Vec::new(),
            Err(e) => vec![format!("{at}: the filter refuses this configuration: {e}")],
        },
        ("yaml" | "yml", Some("envoy")) => check_envoy_file(block),
        ("yaml" | "yml", None) => vec![format!(
            "{at}: a YAML block must say what it is: ```yaml envoy (a whole Envoy file, \
             validated) or ```yaml fragment (not checked alone)"
        )],
        (_, None) => Vec::new(),
        (_, Some(other)) => vec![format!(
            "{at}: unknown example kind `{other}` (expected `envoy` or `fragment`)"
        )],
    }
}

/// A whole Envoy file: its filter configurations load, and Envoy validates it with the built
/// filter.
fn check_envoy_file(block: &Block) -> Vec<String> {
    let at = &block.at;
    let envoy: Value = match serde_yaml::from_str(&block.text) {
        Ok(v) => v,
        Err(e) => return vec![format!("{at}: not YAML: {e}")],
    };
    if envoy.get("static_resources").is_none() {
        return vec![format!(
            "{at}: marked `envoy` but has no static_resources: mark it `fragment`"
        )];
    }
    let configs = filter_configs(&envoy);
    if configs.is_empty() {
        return vec![format!("{at}: an Envoy file without the filter")];
    }
    let mut problems: Vec<String> = configs
        .iter()
        .filter_map(|c| load(c).err())
        .map(|e| format!("{at}: the filter refuses its configuration: {e}"))
        .collect();
    let (ok, log) = envoy_validate(&with_built_filter(&block.text));
    if !(ok && log.contains("OK")) {
        problems.push(format!("{at}: envoy --mode validate refused it:\n{log}"));
    }
    problems
}

/// The text with every `filename: ….wasm` naming the built `.wasm`.
fn with_built_filter(yaml: &str) -> String {
    let wasm = wasm_path().to_string_lossy().into_owned();
    yaml.lines()
        .map(|line| match line.find("filename: ") {
            Some(i) if line.contains(".wasm") => {
                let rest = &line[i + "filename: ".len()..];
                let end = rest.find(|c: char| c.is_whitespace() || c == '}');
                let tail = end.map_or("", |e| &rest[e..]);
                format!("{}filename: {wasm}{tail}\n", &line[..i])
            }
            _ => format!("{line}\n"),
        })
        .collect()
}

/// `envoy --mode validate`, the .so's directory as the dynamic-module search path and every
/// `host_env_keys` variable set; (accepted, log).
fn envoy_validate(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, yaml).unwrap();
    let so = so_path();
    let search = so.parent().unwrap_or(Path::new(".")).to_path_buf();
    let env_keys = host_env_keys(yaml);
    let out = Command::new(envoy_bin())
        .args([
            "--mode",
            "validate",
            "--use-dynamic-base-id",
            "-l",
            "info",
            "-c",
        ])
        .arg(&path)
        .env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", search)
        .envs(env_keys.iter().map(|k| (k.as_str(), TEST_ENV_VALUE)))
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), log)
}

/// The names in every `host_env_keys: [A, B]` of a YAML text.
fn host_env_keys(yaml: &str) -> Vec<String> {
    yaml.lines()
        .filter_map(|l| l.split_once("host_env_keys:"))
        .flat_map(|(_, list)| {
            list.split(['[', ']', ',', '#'])
                .map(str::trim)
                .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_configuration_example_in_the_docs_is_checked() {
    let examples = examples();
    let json = examples
        .iter()
        .filter(|b| b.lang == "json" && b.kind.is_none())
        .count();
    let envoy = examples
        .iter()
        .filter(|b| b.kind.as_deref() == Some("envoy"))
        .count();
    let fragments = examples
        .iter()
        .filter(|b| b.kind.as_deref() == Some("fragment"))
        .count();
    // The checks cannot pass by finding nothing.
    assert!(json >= 3, "only {json} whole filter configurations found");
    assert!(envoy >= 1, "no whole Envoy file found");
    let problems: Vec<String> = examples.iter().flat_map(check).collect();
    assert!(
        problems.is_empty(),
        "{} example(s) drifted from the code:\n{}",
        problems.len(),
        problems.join("\n")
    );
    eprintln!(
        "docs examples: {json} filter configurations loaded, {envoy} Envoy file(s) validated, \
         {fragments} fragment(s) not checked alone"
    );
}

/// The check is not vacuous: an example with a field the filter does not have, or an Envoy
/// file whose filter configuration drifted, fails it, naming the place and the field.
#[test]
fn a_drifted_example_fails_the_check() {
    let examples = examples();
    let json = examples
        .iter()
        .find(|b| b.lang == "json" && b.kind.is_none())
        .unwrap();
    let drifted = Block {
        text: json
            .text
            .replacen("\"providers\"", "\"report_only\": 1, \"providers\"", 1),
        ..json.clone()
    };
    let problems = check(&drifted);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(&json.at) && problems[0].contains("report_only"),
        "{problems:?}"
    );

    let envoy = examples
        .iter()
        .find(|b| b.kind.as_deref() == Some("envoy"))
        .unwrap();
    let drifted = Block {
        text: envoy.text.replacen("\"cluster\"", "\"clusters\"", 1),
        ..envoy.clone()
    };
    assert_ne!(drifted.text, envoy.text);
    let problems = check(&drifted);
    assert!(!problems.is_empty(), "a drifted Envoy file passed");
    assert!(
        problems.iter().any(|p| p.contains("clusters")),
        "{problems:?}"
    );

    let unmarked = Block {
        kind: None,
        lang: "yaml".into(),
        text: "a: 1\n".into(),
        at: "x.md:1".into(),
    };
    assert_eq!(check(&unmarked).len(), 1);
}

#[test]
fn blocks_are_found_with_their_kind_and_indentation() {
    let md = "text\n```json\n{}\n```\n\n1. item\n   ```yaml fragment\n   a: 1\n   ```\n";
    let blocks = blocks_of("x.md", md);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].at, "x.md:2");
    assert_eq!(
        (blocks[0].lang.as_str(), blocks[0].kind.as_deref()),
        ("json", None)
    );
    assert_eq!(blocks[1].kind.as_deref(), Some("fragment"));
    assert_eq!(blocks[1].text, "a: 1\n");
    assert_eq!(
        host_env_keys("    host_env_keys: [CEA_A, CEA_B]   # why\n"),
        ["CEA_A", "CEA_B"]
    );
}
