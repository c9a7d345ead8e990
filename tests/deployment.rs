//! The deployment examples are checked, not just written: `envoy/*.yaml` pass
//! `envoy --mode validate` with the built filter and serve as configured when started;
//! `deploy/kubernetes` and `deploy/istio` hold together field by field (the Secrets the
//! sign-in names reach the VM in each), and the Istio sign-in runs as Istio would configure
//! it; `make oci` writes an OCI image layout whose digests add up and whose layer holds the
//! exact `.wasm`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use cognito_edge_auth::config::Config;
use common::*;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Where the examples expect the `.wasm` (the Kubernetes example mounts it there).
const WASM_MOUNT: &str = "/etc/envoy/wasm/cognito_edge_auth.wasm";
const NATIVE_CONFIG: &str = "envoy/native.yaml";
const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";
const ENVOY_CONFIGS: [&str; 3] = [
    "envoy/production.yaml",
    "envoy/openmetadata.yaml",
    "envoy/browser-login.yaml",
];
/// What the examples' `host_env_keys` name (envoy/browser-login.yaml): set for the checks.
const LOGIN_ENV: [(&str, &str); 2] = [
    ("CEA_CLIENT_SECRET", "example-secret"),
    (
        "CEA_COOKIE_KEY",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    ),
];
/// The Istio examples: the plugin, and the plugin with browser sign-in.
const ISTIO_PLUGINS: [&str; 2] = [
    "deploy/istio/wasmplugin.yaml",
    "deploy/istio/wasmplugin-login.yaml",
];
const ISTIO_LOGIN_PLUGIN: &str = "deploy/istio/wasmplugin-login.yaml";
const ISTIO_LOGIN_EGRESS: &str = "deploy/istio/cognito-domain-egress.yaml";
const ISTIO_LOGIN_DEPLOYMENT: &str = "deploy/istio/deployment-login.yaml";
const K8S_LOGIN_DEPLOYMENT: &str = "deploy/kubernetes/deployment-login.yaml";
const K8S_LOGIN_CONFIGMAP: &str = "deploy/kubernetes/envoy-login-configmap.yaml";
/// The sign-in's Secret, shared by the Kubernetes and the Istio example.
const LOGIN_SECRET: &str = "deploy/kubernetes/login-secret.yaml";
/// What the tests put in the Secret in place of its placeholders, by key.
const TEST_SECRET: [(&str, &str); 2] = [
    ("client-secret", "test-client-secret"),
    ("cookie-key", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="),
];

// ---------------------------------------------------------------------------------------
// Envoy configurations: envoy --mode validate

#[test]
fn every_envoy_config_passes_envoy_validate_with_the_built_filter() {
    for file in ENVOY_CONFIGS {
        let code = format!("filename: {WASM_MOUNT} ");
        let text = read(file);
        assert_eq!(text.matches(&code).count(), 1, "{file}: the .wasm path");
        let text = text.replace(&code, &format!("filename: {} ", wasm_path().display()));
        let (ok, log) = envoy_validate(&text);
        assert!(ok && log.contains("OK"), "{file} refused:\n{log}");
        eprintln!("{file}: envoy --mode validate: OK");
    }
}

/// The native example: Envoy loads the built .so from ENVOY_DYNAMIC_MODULES_SEARCH_PATH and the
/// module accepts its configuration; a bad field in it is refused, named, and Envoy stops.
#[test]
fn the_native_example_passes_envoy_validate_with_the_built_module() {
    let text = read(NATIVE_CONFIG);
    let so = so_path();
    let dir = so.parent().unwrap().to_string_lossy().into_owned();
    let env = vec![("ENVOY_DYNAMIC_MODULES_SEARCH_PATH".to_string(), dir)];
    let (ok, log) = envoy_validate_with(&text, &env);
    assert!(ok && log.contains("OK"), "{NATIVE_CONFIG} refused:\n{log}");
    assert!(
        log.contains("Dynamic module ABI version v0.2.0 matched"),
        "{log}"
    );
    eprintln!("{NATIVE_CONFIG}: envoy --mode validate: OK");

    let bad = text.replace("\"timeout_ms\": 3000", "\"timeout_ms\": \"soon\"");
    assert_ne!(bad, text);
    let (ok, log) = envoy_validate_with(&bad, &env);
    assert!(!ok, "a bad field passed:\n{log}");
    assert!(log.contains("providers[0].jwks.timeout_ms"), "{log}");

    // Its JSON is the production example's, filter for filter.
    let b = yaml_one(NATIVE_CONFIG);
    let filters = only_hcm(&b)["http_filters"].as_array().unwrap().clone();
    let module = &filters[0]["typed_config"];
    assert_eq!(filters[0]["name"], "envoy.filters.http.dynamic_modules");
    assert_eq!(module["dynamic_module_config"]["name"], "cognito_edge_auth");
    let native: Value =
        serde_json::from_str(module["filter_config"]["value"].as_str().unwrap()).unwrap();
    assert_eq!(native, filter_config(&yaml_one("envoy/production.yaml")));
}

/// Each configuration is parsed with the VM environment its file gives the filter: for Envoy the
/// `host_env_keys` (set to test values) and `key_values`, for Istio what `vmConfig.env` makes
/// of them. A secret the filter names but the VM does not get fails here.
#[test]
fn every_filter_configuration_parses_with_the_crate() {
    for file in ENVOY_CONFIGS {
        let mut b = yaml_one(file);
        let env = envoy_vm_env(&wasm_plugin_config(&mut b)["vm_config"], &login_env);
        check_filter_config(file, &filter_config(&b), &env);
    }
    for file in ISTIO_PLUGINS {
        let plugin = yaml_one(file);
        let env = istio_vm_env(&plugin["spec"], &login_env);
        check_filter_config(
            file,
            &istio_plugin_config(&plugin["spec"]["pluginConfig"]),
            &env,
        );
    }
}

// ---------------------------------------------------------------------------------------
// Envoy configurations: what they must say

#[test]
fn envoy_configs_are_production_shaped() {
    for file in ENVOY_CONFIGS {
        let b = yaml_one(file);
        assert_eq!(
            b["admin"]["address"]["socket_address"]["address"], "127.0.0.1",
            "{file}: admin must be on loopback"
        );
        let hcm = only_hcm(&b);
        assert_eq!(hcm["normalize_path"], true, "{file}");
        assert_eq!(hcm["merge_slashes"], true, "{file}");
        assert_eq!(
            hcm["path_with_escaped_slashes_action"], "UNESCAPE_AND_REDIRECT",
            "{file}"
        );
        assert_eq!(
            hcm["common_http_protocol_options"]["headers_with_underscores_action"], "DROP_HEADER",
            "{file}: x_auth_* must not reach the upstream"
        );

        // The wasm filter, fail closed, right before the router.
        let filters = hcm["http_filters"].as_array().unwrap();
        let names: Vec<&str> = filters
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["envoy.filters.http.wasm", "envoy.filters.http.router"],
            "{file}"
        );
        let plugin = &filters[0]["typed_config"]["config"];
        assert_eq!(plugin["failure_policy"], "FAIL_CLOSED", "{file}");
        assert_ne!(plugin["fail_open"], true, "{file}");
        assert_eq!(plugin["vm_config"]["runtime"], "envoy.wasm.runtime.v8");
        assert_eq!(plugin["vm_config"]["code"]["local"]["filename"], WASM_MOUNT);
        assert_eq!(
            plugin["configuration"]["@type"],
            "type.googleapis.com/google.protobuf.StringValue"
        );

        // Every JWKS cluster exists (`--mode validate` cannot know: the filter names it at
        // run time), and one that reaches Cognito does so over verified TLS.
        let config = filter_config(&b);
        for p in config["providers"].as_array().unwrap() {
            let cluster = cluster_named(&b, p["jwks"]["cluster"].as_str().unwrap())
                .unwrap_or_else(|| panic!("{file}: no cluster {}", p["jwks"]["cluster"]));
            let (host, port) = endpoint(cluster);
            let uri = p["jwks"]["uri"].as_str().unwrap();
            if let Some(pool) = p["user_pool_id"].as_str() {
                let cognito = format!("cognito-idp.{}.amazonaws.com", region(pool));
                assert_eq!(
                    uri,
                    format!("https://{cognito}/{pool}/.well-known/jwks.json"),
                    "{file}"
                );
                assert_eq!((host.as_str(), port), (cognito.as_str(), 443), "{file}");
                assert_verified_tls(file, cluster, &cognito);
            } else {
                let authority = uri.split('/').nth(2).unwrap();
                assert_eq!(authority, format!("{host}:{port}"), "{file}: {uri}");
            }
        }

        // The sign-in's token endpoint: the user pool domain, over verified TLS.
        if let Some(login) = config.get("login") {
            check_token_cluster(file, &b, login);
        }

        // /healthz: answered by Envoy and public in the filter (it runs before the router).
        let routes = &hcm["route_config"]["virtual_hosts"][0]["routes"];
        assert_eq!(routes[0]["match"], json!({ "path": "/healthz" }), "{file}");
        assert_eq!(routes[0]["direct_response"]["status"], 200, "{file}");
        assert_eq!(
            config["rules"][0],
            json!({ "match": { "exact": "/healthz", "methods": ["GET", "HEAD"] }, "allow": "public" }),
            "{file}"
        );
    }
}

#[test]
fn openmetadata_example_mirrors_the_seed_configuration() {
    let c = filter_config(&yaml_one("envoy/openmetadata.yaml"));
    let pool = &c["providers"][0];
    assert_eq!(pool["user_pool_id"], "us-east-1_xxx");
    assert_eq!(
        pool["jwks"]["uri"],
        "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_xxx/.well-known/jwks.json"
    );
    let bots = &c["providers"][1];
    assert_eq!(
        bots["jwks"]["uri"],
        "http://openmetadata:8585/api/v1/system/config/jwks"
    );
    assert!(bots.get("user_pool_id").is_none() && bots.get("client_ids").is_none());
    assert_eq!(c["admin_principals"], json!(["user1", "user2"]));
    assert_eq!(c["principal_domain"], "open-metadata.org");
    assert_eq!(
        c["principal_claims"],
        json!(["email", "cognito:username", "username", "sub"]),
        "preferred_username is set by users: not a principal"
    );
    assert_eq!(
        bots["require_email_verified"], false,
        "OpenMetadata vouches for its bots' emails"
    );
    assert_eq!(
        bots["require_expiration"], false,
        "OpenMetadata's \"Unlimited\" bot tokens have no exp"
    );
    assert!(bots["revocation_list"]["uri"].is_string());
    let public: Vec<&str> = c["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["allow"] == "public")
        .filter_map(|r| r["match"]["exact"].as_str())
        .collect();
    for path in [
        "/api/v1/system/config/auth",
        "/api/v1/system/config/jwks",
        "/api/v1/system/health",
        "/api/v1/system/version",
    ] {
        assert!(public.contains(&path), "{path} must be public");
    }
}

/// OpenMetadata signs bot tokens with `iss: open-metadata.org` by default, and the example's
/// bots provider accepts exactly that.
#[test]
fn openmetadata_bot_issuer_is_the_default() {
    let c = filter_config(&yaml_one("envoy/openmetadata.yaml"));
    assert_eq!(c["providers"][1]["issuer"], "open-metadata.org");
    Config::parse(c.to_string().as_bytes()).unwrap();
}

// ---------------------------------------------------------------------------------------
// Envoy configurations, running: the production example and the OpenMetadata example

#[test]
fn production_config_serves_healthz_and_guards_the_rest() {
    let file = "envoy/production.yaml";
    let mut b = yaml_one(file);
    let config = filter_config(&b);
    let pool = config["providers"][0]["user_pool_id"].as_str().unwrap();
    let client = config["providers"][0]["client_ids"][0].as_str().unwrap();
    let iss = format!("https://cognito-idp.{}.amazonaws.com/{pool}", region(pool));

    let jwks_requests = Arc::new(Mutex::new(Vec::new()));
    let seen = jwks_requests.clone();
    let jwks = Server::start(Arc::new(move |r: &ServerRequest| {
        let host = header(&r.headers, "host");
        seen.lock().unwrap().push((r.path.clone(), host));
        canned(200, tokens::jwks(&[("key1", "k1")]))
    }));
    let upstream = echo_upstream();
    runnable(
        &mut b,
        &[("app", upstream.port), ("cognito_idp", jwks.port)],
    );
    let envoy = Envoy::start(&b);

    let now = now();
    let claims = tokens::with(
        tokens::with(tokens::id_claims(now), "iss", iss.into()),
        "aud",
        client.into(),
    );
    let token = tokens::sign("key1", "k1", &claims);
    assert_eq!(get(envoy.port, "/").status, 401);
    envoy.wait_for_keys(&token);
    let (path, host) = jwks_requests.lock().unwrap()[0].clone();
    assert_eq!(path, format!("/{pool}/.well-known/jwks.json"));
    assert_eq!(host, format!("cognito-idp.{}.amazonaws.com", region(pool)));

    // x_auth_admin (underscores) never reaches the application.
    let bearer = format!("Bearer {token}");
    let r = request(
        envoy.port,
        "GET",
        "/x",
        &[
            ("authorization", bearer.as_bytes()),
            ("x_auth_admin", b"true"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains("x_auth_admin"), "{}", r.body);

    let health = get(envoy.port, "/healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    assert_eq!(get(envoy.port, "/healthz/../secret").status, 401);
    assert_eq!(request(envoy.port, "POST", "/healthz", &[]).status, 401);
    assert_eq!(get(envoy.port, "/anything").status, 401);
    assert!(upstream.hits() >= 1);
}

#[test]
fn openmetadata_config_admits_users_and_bots_and_leaves_the_ui_public() {
    let file = "envoy/openmetadata.yaml";
    let mut b = yaml_one(file);
    let config = filter_config(&b);
    let client = config["providers"][0]["client_ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let bot_issuer = config["providers"][1]["issuer"]
        .as_str()
        .unwrap()
        .to_string();

    // OpenMetadata stand-in: its bot JWKS on the configured path, an echo elsewhere.
    const BOT_KID: &str = "Gb389a-9f76-gdjs-a92j-0242bk94356"; // OpenMetadata's default keyId
    let openmetadata = Server::start(Arc::new(|r: &ServerRequest| {
        if r.path == "/api/v1/system/config/jwks" && r.method == "GET" {
            return canned(200, tokens::jwks(&[("key2", BOT_KID)]));
        }
        canned(
            200,
            json!({ "method": r.method, "path": r.path, "headers": r.headers }).to_string(),
        )
    }));
    let cognito = Server::start(Arc::new(|_r: &ServerRequest| {
        canned(200, tokens::jwks(&[("key1", "pool")]))
    }));
    let revocation_list = Server::start(Arc::new(|r: &ServerRequest| {
        assert_eq!(r.path, "/openmetadata-bots.json");
        canned(200, json!({ "sub": ["leaked-bot"] }).to_string())
    }));
    runnable(
        &mut b,
        &[
            ("openmetadata", openmetadata.port),
            ("cognito_idp", cognito.port),
            ("revocation_list", revocation_list.port),
        ],
    );
    let envoy = Envoy::start(&b);

    let now = now();
    let user1 = tokens::sign(
        "key1",
        "pool",
        &json!({
            "sub": "0f1e2d3c-0000-4000-8000-000000000001", "token_use": "id",
            "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_xxx", "aud": client,
            "cognito:username": "user1", "email": "user1@open-metadata.org", "email_verified": true,
            "iat": now - 10, "exp": now + 3600,
        }),
    );
    // As OpenMetadata's JWTTokenGenerator makes them (with JWT_ISSUER set to a URL).
    let bot = tokens::sign(
        "key2",
        BOT_KID,
        &json!({
            "iss": bot_issuer, "sub": "ingestion-bot", "email": "ingestion-bot@open-metadata.org",
            "isBot": true, "tokenType": "BOT", "iat": now - 10, "exp": now + 3600,
        }),
    );
    let user = wait_for_200(&envoy, "/api/v1/tables", &user1);
    let robot = wait_for_200(&envoy, "/api/v1/tables", &bot);
    // "Unlimited" bot tokens (no exp) pass; one on the revocation list does not.
    let unlimited = |name: &str| {
        tokens::sign(
            "key2",
            BOT_KID,
            &json!({
                "iss": bot_issuer, "sub": name, "username": name, "email": format!("{name}@open-metadata.org"),
                "isBot": true, "tokenType": "BOT", "roles": ["IngestionBotRole"], "iat": now - 10,
            }),
        )
    };
    assert_eq!(
        get_with_token(envoy.port, "/api/v1/tables", &unlimited("ingestion-bot")).status,
        200
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = get_with_token(envoy.port, "/api/v1/tables", &unlimited("leaked-bot"));
        if r.status == 401 {
            assert_eq!(r.json()["error_description"], "the token has been revoked");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never revoked: {}",
            r.status
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    assert_eq!(get(envoy.port, "/api/v1/tables").status, 401);
    assert_eq!(header_of(&user, "x-auth-principal"), "user1");
    assert_eq!(header_of(&user, "x-auth-admin"), "true");
    assert_eq!(header_of(&robot, "x-auth-principal"), "ingestion-bot");
    assert_eq!(
        header_of(&robot, "x-auth-email"),
        "ingestion-bot@open-metadata.org"
    );
    assert_eq!(header_of(&robot, "x-auth-provider"), "openmetadata-bots");
    for path in [
        "/healthz",
        "/api/v1/system/config/auth",
        "/api/v1/system/config/jwks",
        "/api/v1/system/health",
        "/api/v1/system/version",
        "/",
        "/explore/tables",
        "/assets/index.js",
    ] {
        assert_eq!(get(envoy.port, path).status, 200, "{path} must be public");
    }
    for path in [
        "/api",
        "/api/v1/system/version/../../tables",
        "/api//v1/tables",
        "/api/v1/system/versions",
        "/%61pi/v1/tables",
    ] {
        let status = get(envoy.port, path).status;
        assert!(
            status == 401 || status == 400,
            "{path}: {status}, must not be public"
        );
    }
    assert_eq!(
        request(envoy.port, "POST", "/api/v1/system/version", &[]).status,
        401
    );
}

// ---------------------------------------------------------------------------------------
// Kubernetes: Envoy sidecar

#[test]
fn kubernetes_sidecar_example_holds_together() {
    sidecar_example(
        "deploy/kubernetes/deployment.yaml",
        "deploy/kubernetes/envoy-configmap.yaml",
        "envoy/production.yaml",
    );
}

/// What every sidecar example must hold: the objects, labels and selectors, the ConfigMap that
/// is `envoy_file` verbatim, the mounts, the ports. Returns the Deployment and the Envoy
/// configuration it runs.
fn sidecar_example(
    deployment_file: &str,
    configmap_file: &str,
    envoy_file: &str,
) -> (Value, Value) {
    let docs = yaml_docs(deployment_file);
    let kinds: Vec<(&str, &str)> = docs
        .iter()
        .map(|d| {
            (
                d["apiVersion"].as_str().unwrap(),
                d["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("apps/v1", "Deployment"),
            ("v1", "Service"),
            ("networking.k8s.io/v1", "NetworkPolicy")
        ]
    );
    let (deployment, service, policy) = (&docs[0], &docs[1], &docs[2]);
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(deployment["spec"]["selector"]["matchLabels"], *labels);
    assert_eq!(service["spec"]["selector"], *labels);
    assert_eq!(policy["spec"]["podSelector"]["matchLabels"], *labels);

    // The Envoy configuration is envoy_file, verbatim.
    let cm = yaml_one(configmap_file);
    assert_eq!(
        (cm["apiVersion"].as_str(), cm["kind"].as_str()),
        (Some("v1"), Some("ConfigMap"))
    );
    assert_eq!(
        cm["metadata"]["namespace"],
        deployment["metadata"]["namespace"]
    );
    let envoy_yaml = cm["data"]["envoy.yaml"].as_str().unwrap();
    assert!(
        envoy_yaml == read(envoy_file),
        "{configmap_file} is not {envoy_file}: regenerate it (see its header)"
    );
    let bootstrap: Value = serde_yaml::from_str(envoy_yaml).unwrap();

    let pod = &deployment["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap();
    let envoy = containers.iter().find(|c| c["name"] == "envoy").unwrap();
    assert!(envoy["image"]
        .as_str()
        .unwrap()
        .starts_with("envoyproxy/envoy:distroless-v1.40."));
    let args: Vec<&str> = envoy["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let config_path = args[args.iter().position(|a| *a == "-c").unwrap() + 1];
    assert!(args.contains(&"--concurrency"));

    // Both files Envoy reads come from the ConfigMaps, at the paths the config names.
    let mounted = |path: &str| -> (String, String) {
        let (dir, file) = path.rsplit_once('/').unwrap();
        let mount = envoy["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"] == dir)
            .unwrap_or_else(|| panic!("nothing mounted at {dir}"));
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        let item = volume["configMap"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["path"] == file)
            .unwrap_or_else(|| panic!("{path}: not in the ConfigMap's items"));
        (
            volume["configMap"]["name"].as_str().unwrap().to_string(),
            item["key"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        mounted(config_path),
        (
            cm["metadata"]["name"].as_str().unwrap().to_string(),
            "envoy.yaml".to_string()
        )
    );
    assert_eq!(
        mounted(WASM_MOUNT),
        (
            "cognito-edge-auth-wasm".to_string(),
            "cognito_edge_auth.wasm".to_string()
        )
    );

    // Ports: listener = container port = Service target = the only port the policy opens;
    // probes hit the public /healthz on it.
    let listener = bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"]
        ["port_value"]
        .as_u64()
        .unwrap();
    let port = &envoy["ports"][0];
    assert_eq!(port["containerPort"].as_u64(), Some(listener));
    assert_eq!(service["spec"]["ports"][0]["targetPort"], port["name"]);
    assert_eq!(
        policy["spec"]["ingress"],
        json!([{ "ports": [{ "protocol": "TCP", "port": listener }] }])
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            envoy[probe]["httpGet"],
            json!({ "path": "/healthz", "port": listener }),
            "{probe}"
        );
    }
    let app = containers.iter().find(|c| c["name"] == "app").unwrap();
    assert!(app["env"].to_string().contains("127.0.0.1:8080"));
    assert_eq!(
        endpoint(cluster_named(&bootstrap, "app").unwrap()),
        ("127.0.0.1".to_string(), 8080)
    );
    (deployment.clone(), bootstrap)
}

/// The sign-in sidecar: the Secret's keys reach Envoy's environment (secretKeyRef), and Envoy
/// passes exactly those variables to the VM (`host_env_keys`), where `login.*_env` names them.
#[test]
fn kubernetes_login_example_gives_envoy_exactly_the_secrets_it_names() {
    let (deployment, mut bootstrap) = sidecar_example(
        K8S_LOGIN_DEPLOYMENT,
        K8S_LOGIN_CONFIGMAP,
        "envoy/browser-login.yaml",
    );
    let secret = login_secret();
    assert_eq!(
        secret["metadata"]["namespace"],
        deployment["metadata"]["namespace"]
    );
    let pod = &deployment["spec"]["template"]["spec"];
    let env = secret_env(container(pod, "envoy"), &secret);
    only_holder_of(pod, "envoy", &secret);

    let names: BTreeSet<String> = env.iter().map(|(name, _)| name.clone()).collect();
    let vm = wasm_plugin_config(&mut bootstrap)["vm_config"].clone();
    let host_env_keys: BTreeSet<String> = vm["environment_variables"]["host_env_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names, host_env_keys,
        "the container's env and host_env_keys"
    );
    let config = filter_config(&bootstrap);
    assert_eq!(
        names,
        login_env_names(&config["login"]),
        "the container's env and login.*_env"
    );
    let keys: BTreeSet<String> = env.iter().map(|(_, key)| key.clone()).collect();
    assert_eq!(
        keys,
        secret_keys(&secret),
        "every key of the Secret is used"
    );
    check_token_cluster(K8S_LOGIN_DEPLOYMENT, &bootstrap, &config["login"]);

    // Envoy accepts the ConfigMap with exactly the environment the Deployment gives it (the
    // Secret holding real values).
    let cm = yaml_one(K8S_LOGIN_CONFIGMAP);
    let code = format!("filename: {WASM_MOUNT} ");
    let text = cm["data"]["envoy.yaml"]
        .as_str()
        .unwrap()
        .replace(&code, &format!("filename: {} ", wasm_path().display()));
    let container_env = env_from_secret(&env, &|key| test_secret(key));
    let (ok, log) = envoy_validate_with(&text, &container_env);
    assert!(
        ok && log.contains("OK"),
        "{K8S_LOGIN_CONFIGMAP} refused:\n{log}"
    );

    // The Secret as committed (placeholders) never runs: the cookie key is not a key.
    let placeholders = env_from_secret(&env, &|key| {
        secret["stringData"][key].as_str().map(str::to_string)
    });
    let vm_env = envoy_vm_env(&vm, &|name| lookup(&placeholders, name));
    let e = Config::parse_with_env(config.to_string().as_bytes(), &|name| lookup(&vm_env, name))
        .unwrap_err();
    assert_eq!(e.field, "login.cookie_key_env", "{e}");
}

/// deployment-login.yaml is deployment.yaml plus the Secret in Envoy's environment and the
/// sign-in's Envoy configuration: nothing else may drift apart.
#[test]
fn kubernetes_login_deployment_differs_from_deployment_yaml_only_in_the_sign_in() {
    let plain = yaml_docs("deploy/kubernetes/deployment.yaml");
    let mut login = yaml_docs(K8S_LOGIN_DEPLOYMENT);
    let plain_cm = yaml_one("deploy/kubernetes/envoy-configmap.yaml");
    let login_cm = yaml_one(K8S_LOGIN_CONFIGMAP);
    assert_ne!(plain_cm["metadata"]["name"], login_cm["metadata"]["name"]);
    let pod = &mut login[0]["spec"]["template"]["spec"];
    let envoy = pod["containers"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["name"] == "envoy")
        .unwrap();
    assert!(envoy.as_object_mut().unwrap().remove("env").is_some());
    let volume = pod["volumes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|v| v["configMap"]["name"] == login_cm["metadata"]["name"])
        .expect("a volume of the sign-in's Envoy ConfigMap");
    volume["configMap"]["name"] = plain_cm["metadata"]["name"].clone();
    assert!(
        login == plain,
        "{K8S_LOGIN_DEPLOYMENT} differs from deploy/kubernetes/deployment.yaml beyond the envoy \
         container's env and the Envoy ConfigMap"
    );
}

/// The sidecar example ships the `.wasm` in a ConfigMap, which the API server caps at 1 MiB.
#[test]
fn the_built_wasm_fits_in_a_configmap() {
    let size = std::fs::metadata(wasm_path()).unwrap().len();
    assert!(
        size <= 1024 * 1024,
        "{} is {size} bytes, over a ConfigMap's 1 MiB: the Kubernetes sidecar example \
         (deploy/kubernetes) cannot carry it. Strip the release build (profile.release \
         strip = true) or mount the OCI image (make oci) as an image volume",
        wasm_path().display()
    );
    // The budget the project keeps (issue 14; 960 KiB since the sessions and online-check
    // work of issues 19 and 20, which took the module to 903 KiB): V8 compiles the module
    // once per worker VM, and Istio pulls it into every sidecar.
    assert!(
        size <= 960 * 1024,
        "{} is {size} bytes, over the 960 KiB budget: see profile.release in Cargo.toml",
        wasm_path().display()
    );
}

// ---------------------------------------------------------------------------------------
// Istio: WasmPlugin, ServiceEntry, DestinationRule

#[test]
fn istio_wasm_plugin_matches_the_crd() {
    for file in ISTIO_PLUGINS {
        check_wasm_plugin_crd(file, &yaml_one(file));
    }
}

fn check_wasm_plugin_crd(file: &str, plugin: &Value) {
    assert_eq!(
        plugin["apiVersion"], "extensions.istio.io/v1alpha1",
        "{file}"
    );
    assert_eq!(plugin["kind"], "WasmPlugin", "{file}");
    assert!(plugin["metadata"]["name"].is_string() && plugin["metadata"]["namespace"].is_string());
    let spec = &plugin["spec"];
    // istio/api extensions/v1alpha1/wasm.proto, WasmPlugin.
    known_fields(
        spec,
        &[
            "selector",
            "targetRef",
            "targetRefs",
            "url",
            "sha256",
            "imagePullPolicy",
            "imagePullSecret",
            "verificationKey",
            "pluginConfig",
            "pluginName",
            "phase",
            "priority",
            "failStrategy",
            "vmConfig",
            "match",
            "type",
        ],
        "WasmPlugin.spec",
    );
    let url = spec["url"].as_str().unwrap();
    assert!(url.starts_with("oci://") && url.len() > "oci://".len());
    if let Some(sha) = spec.get("sha256") {
        let sha = sha.as_str().unwrap();
        assert!(
            sha.len() == 64
                && sha
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }
    one_of(
        spec,
        "phase",
        &["UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"],
    );
    assert_eq!(spec["phase"], "AUTHN", "{file}");
    one_of(
        spec,
        "failStrategy",
        &["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"],
    );
    assert_eq!(spec["failStrategy"], "FAIL_CLOSE", "{file}");
    one_of(
        spec,
        "imagePullPolicy",
        &["UNSPECIFIED_POLICY", "IfNotPresent", "Always"],
    );
    one_of(
        spec,
        "type",
        &["UNSPECIFIED_PLUGIN_TYPE", "HTTP", "NETWORK"],
    );
    let name = spec["pluginName"].as_str().unwrap();
    assert!((1..=256).contains(&name.len()));
    for m in spec["match"].as_array().unwrap() {
        known_fields(m, &["mode", "ports"], "WasmPlugin.spec.match[]");
        one_of(
            m,
            "mode",
            &["UNDEFINED", "CLIENT", "SERVER", "CLIENT_AND_SERVER"],
        );
    }
    assert_eq!(spec["match"], json!([{ "mode": "SERVER" }]), "{file}");
    // Only one of selector and targetRefs; a selector is labels.
    assert!(spec.get("targetRefs").is_none() && spec.get("targetRef").is_none());
    let labels = spec["selector"]["matchLabels"].as_object().unwrap();
    assert!(!labels.is_empty() && labels.values().all(Value::is_string));
    assert!(spec["pluginConfig"].is_object());
    // VmConfig { env: [EnvVar { name, valueFrom: INLINE | HOST, value }] }: at most 256, keyed
    // by name; a C identifier of at most 256; `value` (at most 2048) only with INLINE.
    if let Some(vm) = spec.get("vmConfig") {
        known_fields(vm, &["env"], "WasmPlugin.spec.vmConfig");
        let env = vm["env"].as_array().unwrap();
        assert!(env.len() <= 256, "{file}");
        let mut names = BTreeSet::new();
        for e in env {
            known_fields(
                e,
                &["name", "valueFrom", "value"],
                "WasmPlugin.spec.vmConfig.env[]",
            );
            let name = e["name"].as_str().unwrap();
            assert!(
                is_c_identifier(name) && name.len() <= 256,
                "{file}: env name {name:?} is not a C identifier"
            );
            assert!(names.insert(name), "{file}: env {name} twice");
            one_of(e, "valueFrom", &["INLINE", "HOST"]);
            if e["valueFrom"] == "HOST" {
                assert!(
                    e.get("value").is_none(),
                    "{file}: {name}: value may only be set when valueFrom is INLINE"
                );
            } else if let Some(v) = e.get("value") {
                assert!(v.as_str().unwrap().len() <= 2048, "{file}: {name}");
            }
        }
    }
}

#[test]
fn istio_jwks_cluster_is_the_service_entry_with_tls_origination() {
    let (entry, rule) = istio_egress("deploy/istio/cognito-egress.yaml");
    for file in ISTIO_PLUGINS {
        let plugin = yaml_one(file);
        let config = istio_plugin_config(&plugin["spec"]["pluginConfig"]);
        for p in config["providers"].as_array().unwrap() {
            let cluster = p["jwks"]["cluster"].as_str().unwrap();
            let (host, port) = istio_outbound_cluster(cluster);
            let pool = p["user_pool_id"].as_str().unwrap();
            assert_eq!(host, format!("cognito-idp.{}.amazonaws.com", region(pool)));
            assert_eq!(
                p["jwks"]["uri"],
                format!("https://{host}/{pool}/.well-known/jwks.json")
            );
            assert_eq!(port, 443, "{file}");
            check_tls_origination(&entry, &rule, host, port);
        }
        assert_eq!(
            entry["metadata"]["namespace"],
            plugin["metadata"]["namespace"]
        );
    }
}

/// wasmplugin-login.yaml is wasmplugin.yaml plus `vmConfig` and `login`: nothing else may drift.
#[test]
fn istio_login_plugin_differs_from_wasmplugin_yaml_only_in_the_sign_in() {
    let plain = yaml_one("deploy/istio/wasmplugin.yaml");
    let mut login = yaml_one(ISTIO_LOGIN_PLUGIN);
    let spec = login["spec"].as_object_mut().unwrap();
    assert!(spec.remove("vmConfig").is_some());
    let plugin_config = spec.get_mut("pluginConfig").unwrap();
    assert!(plugin_config
        .as_object_mut()
        .unwrap()
        .remove("login")
        .is_some());
    assert!(
        login == plain,
        "{ISTIO_LOGIN_PLUGIN} differs from deploy/istio/wasmplugin.yaml beyond vmConfig and login"
    );
}

/// The token endpoint is Istio's cluster of the user pool domain's ServiceEntry, with TLS
/// originated to that host; the secrets come from the proxy's environment, never inline.
#[test]
fn istio_login_token_cluster_is_the_domain_service_entry_with_tls_origination() {
    let plugin = yaml_one(ISTIO_LOGIN_PLUGIN);
    let config = istio_plugin_config(&plugin["spec"]["pluginConfig"]);
    let login = &config["login"];
    let domain = domain_host(login);
    let (host, port) = istio_outbound_cluster(login["token_cluster"].as_str().unwrap());
    assert_eq!(
        (host, port),
        (domain, 443),
        "token_cluster must reach login.domain"
    );
    let (entry, rule) = istio_egress(ISTIO_LOGIN_EGRESS);
    check_tls_origination(&entry, &rule, host, port);
    assert_eq!(
        entry["metadata"]["namespace"],
        plugin["metadata"]["namespace"]
    );
    assert_eq!(
        rule["metadata"]["namespace"],
        plugin["metadata"]["namespace"]
    );

    let env = plugin["spec"]["vmConfig"]["env"].as_array().unwrap();
    let names: BTreeSet<String> = env
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        login_env_names(login),
        "vmConfig.env and login.*_env"
    );
    for e in env {
        assert_eq!(
            e["valueFrom"], "HOST",
            "{}: a secret must come from the proxy's environment, not sit in the WasmPlugin",
            e["name"]
        );
    }
}

/// The istio-proxy container (merged by the injector into the sidecar) gets exactly the
/// variables the plugin's vmConfig.env reads, from the sign-in's Secret.
#[test]
fn istio_proxy_gets_the_login_secrets_from_the_secret() {
    let plugin = yaml_one(ISTIO_LOGIN_PLUGIN);
    let docs = yaml_docs(ISTIO_LOGIN_DEPLOYMENT);
    assert_eq!(docs.len(), 1);
    let deployment = &docs[0];
    assert_eq!(
        (
            deployment["apiVersion"].as_str(),
            deployment["kind"].as_str()
        ),
        (Some("apps/v1"), Some("Deployment"))
    );
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (k, v) in deployment["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(labels[k], *v, "the selector matches the pods");
    }
    for (k, v) in plugin["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(labels[k], *v, "the WasmPlugin applies to these pods");
    }
    assert_eq!(labels["sidecar.istio.io/inject"], "true");
    let secret = login_secret();
    assert_eq!(
        deployment["metadata"]["namespace"],
        plugin["metadata"]["namespace"]
    );
    assert_eq!(
        secret["metadata"]["namespace"],
        plugin["metadata"]["namespace"]
    );

    let pod = &deployment["spec"]["template"]["spec"];
    let proxy = container(pod, "istio-proxy");
    assert_eq!(proxy["image"], "auto", "the injector picks the proxy image");
    let env = secret_env(proxy, &secret);
    only_holder_of(pod, "istio-proxy", &secret);
    let names: BTreeSet<String> = env.iter().map(|(name, _)| name.clone()).collect();
    let host: BTreeSet<String> = plugin["spec"]["vmConfig"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["valueFrom"] == "HOST")
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, host, "istio-proxy's env and vmConfig.env (HOST)");
    let keys: BTreeSet<String> = env.iter().map(|(_, key)| key.clone()).collect();
    assert_eq!(
        keys,
        secret_keys(&secret),
        "every key of the Secret is used"
    );
}

/// The Istio sign-in, run: Envoy with the WasmPlugin as Istio turns it into Envoy
/// configuration (pluginConfig as JSON, vmConfig.env HOST as host_env_keys, the egress
/// clusters under Istio's names, the proxy's environment from the Deployment and the Secret).
/// A browser navigation is sent to the hosted UI, an XHR gets 401, and the callback's code is
/// exchanged through `outbound|443||<domain>` with the Secret's client secret.
#[test]
fn istio_login_plugin_signs_a_browser_in_through_the_service_entry_clusters() {
    if wasm_only(
        "Istio's WasmPlugin loads the .wasm; the native sign-in runs in browser_login and sessions",
    ) {
        return;
    }
    let plugin = yaml_one(ISTIO_LOGIN_PLUGIN);
    let spec = &plugin["spec"];
    let config = istio_plugin_config(&spec["pluginConfig"]);
    let login = config["login"].clone();
    let provider = &config["providers"][0];
    let pool = provider["user_pool_id"].as_str().unwrap();
    let iss = format!("https://cognito-idp.{}.amazonaws.com/{pool}", region(pool));
    let client = login["client_id"].as_str().unwrap().to_string();
    let domain = login["domain"].as_str().unwrap().to_string();

    // The proxy's environment: istio-proxy's env of the Deployment, the Secret holding values.
    let deployment = yaml_one(ISTIO_LOGIN_DEPLOYMENT);
    let proxy = container(&deployment["spec"]["template"]["spec"], "istio-proxy");
    let proxy_env = env_from_secret(&secret_env(proxy, &login_secret()), &|key| test_secret(key));
    let client_secret = test_secret("client-secret").unwrap();

    // Cognito's JWKS, unavailable until `keys_up` (a restart while Cognito is slow).
    let keys_up = Arc::new(AtomicBool::new(false));
    let jwks = {
        let keys_up = keys_up.clone();
        Server::start(Arc::new(move |_r: &ServerRequest| {
            if keys_up.load(Ordering::SeqCst) {
                canned(200, tokens::jwks(&[("key1", "k1")]))
            } else {
                canned(503, "not yet".into())
            }
        }))
    };
    // The user pool domain's token endpoint: an ID token for the attempt's nonce.
    let nonce = Arc::new(Mutex::new(String::new()));
    let token_calls = Arc::new(Mutex::new(Vec::new()));
    let token_endpoint = {
        let (nonce, calls, iss, client) = (
            nonce.clone(),
            token_calls.clone(),
            iss.clone(),
            client.clone(),
        );
        Server::start(Arc::new(move |r: &ServerRequest| {
            calls
                .lock()
                .unwrap()
                .push((r.method.clone(), r.path.clone(), r.headers.clone()));
            let claims = tokens::with(tokens::id_claims(now()), "iss", iss.clone().into());
            let claims = tokens::with(claims, "aud", client.clone().into());
            let claims = tokens::with(claims, "nonce", nonce.lock().unwrap().clone().into());
            let id_token = tokens::sign("key1", "k1", &claims);
            canned(
                200,
                json!({ "id_token": id_token, "access_token": "opaque", "token_type": "Bearer",
                        "expires_in": 3600 })
                .to_string(),
            )
        }))
    };
    let upstream = echo_upstream();

    let jwks_cluster = provider["jwks"]["cluster"].as_str().unwrap();
    let token_cluster = login["token_cluster"].as_str().unwrap();
    let mut boot = bootstrap_with_clusters(
        &config,
        vec![
            cluster("upstream", upstream.port),
            cluster(jwks_cluster, jwks.port),
            cluster(token_cluster, token_endpoint.port),
        ],
    );
    let wasm = wasm_plugin_config(&mut boot);
    wasm["root_id"] = spec["pluginName"].clone();
    wasm.as_object_mut().unwrap().remove("fail_open");
    wasm["failure_policy"] = "FAIL_CLOSED".into();
    wasm["vm_config"]["environment_variables"] = istio_environment_variables(spec);
    let envoy = Envoy::start_with_env(&boot, &proxy_env);

    // A browser navigation: 302 to the hosted UI, authorization code with PKCE.
    let navigation: [(&str, &[u8]); 3] = [
        ("accept", b"text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
        ("sec-fetch-mode", b"navigate"),
        ("sec-fetch-dest", b"document"),
    ];
    let r = request(envoy.port, "GET", "/reports/q1?tab=2", &navigation);
    assert_eq!(r.status, 302, "{}\n{}", r.body, envoy.log());
    let location = r.header("location").unwrap();
    let authorize = format!("{domain}/oauth2/authorize?");
    assert!(location.starts_with(&authorize), "{location}");
    let q = query_params(&location[authorize.len()..]);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], client);
    assert_eq!(q["redirect_uri"], "https://localhost/oauth2/callback");
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43, "base64url of a SHA-256");
    assert!(!q["nonce"].is_empty());
    let state = q["state"].clone();
    assert_eq!(state.len(), 22, "{state}");
    let login_cookie = r
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .map(|(_, v)| v.as_str())
        .find(|c| c.starts_with(&format!("__Host-cea_login_{state}=")))
        .unwrap_or_else(|| panic!("no login-state cookie: {:?}", r.headers));
    assert!(login_cookie.contains("Path=/;") && login_cookie.contains("HttpOnly"));
    let login_cookie = login_cookie.split(';').next().unwrap().to_string();

    // The callback before the pool's keys are in: the code is kept for later (a code is good
    // for one exchange, and its ID token could not be checked yet), the page loads itself
    // again in a second.
    *nonce.lock().unwrap() = q["nonce"].clone();
    let callback = format!("/oauth2/callback?code=the-code&state={state}");
    let come_back = || {
        request(
            envoy.port,
            "GET",
            &callback,
            &[("cookie", login_cookie.as_bytes())],
        )
    };
    let r = come_back();
    assert_eq!(r.status, 503, "{}\n{}", r.body, envoy.log());
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(
        r.body
            .contains(r#"<meta http-equiv="refresh" content="1">"#),
        "{}",
        r.body
    );
    assert!(!r.body.contains("the-code"));
    assert!(
        token_calls.lock().unwrap().is_empty(),
        "exchanged without keys"
    );
    envoy.wait_for_stat(
        "wasmcustom.cognito_edge_auth.denied.login_keys_not_loaded",
        1,
    );
    // A callback that is no sign-in of this browser (no login-state cookie: login CSRF) is a
    // failed sign-in, keys or not: its page, counted and logged as one. The early one above
    // is not.
    let r = request(envoy.port, "GET", &callback, &[]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(!r.body.contains("refresh"), "{}", r.body);
    envoy.wait_for_stat("wasmcustom.cognito_edge_auth.login.failed", 1);
    envoy.wait_for_log("login failed reason=login_state");
    assert!(!envoy
        .log()
        .contains("login failed reason=login_keys_not_loaded"));

    // Cognito answers; the keys are in (a bearer token waits for them).
    keys_up.store(true, Ordering::SeqCst);
    let bearer = tokens::with(tokens::id_claims(now()), "iss", iss.clone().into());
    envoy.wait_for_keys(&tokens::sign(
        "key1",
        "k1",
        &tokens::with(bearer, "aud", client.clone().into()),
    ));

    // An XHR without a session: 401, not a redirect.
    let xhr: [(&str, &[u8]); 3] = [
        ("accept", b"application/json"),
        ("sec-fetch-mode", b"cors"),
        ("sec-fetch-dest", b"empty"),
    ];
    let r = request(envoy.port, "GET", "/reports/q1", &xhr);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.header("location"), None);

    // The page's reload: the code is exchanged through the domain's ServiceEntry cluster.
    let r = come_back();
    assert_eq!(r.status, 302, "{}\n{}", r.body, envoy.log());
    assert_eq!(r.header("location"), Some("/reports/q1?tab=2"));
    let calls = token_calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    let (method, path, headers) = &calls[0];
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/oauth2/token"));
    assert_eq!(header(headers, "host"), domain_host(&login));
    use base64::Engine;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{client}:{client_secret}"));
    assert_eq!(
        header(headers, "authorization"),
        format!("Basic {basic}"),
        "the client secret from the Secret, through the proxy's environment"
    );
    let session: Vec<String> = r
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .filter(|(_, v)| v.starts_with("__Host-cea_session_"))
        .map(|(_, v)| v.split(';').next().unwrap().to_string())
        .collect();
    assert!(!session.is_empty(), "no session cookie: {:?}", r.headers);

    // The session lets the XHR through, with the signed-in identity.
    let cookie = session.join("; ");
    let mut with_session = xhr.to_vec();
    with_session.push(("cookie", cookie.as_bytes()));
    let r = request(envoy.port, "GET", "/reports/q1", &with_session);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header_of(&r, "x-auth-email"), "alice@example.com");
    assert!(
        !header_of(&r, "cookie").contains("cea_"),
        "the filter's cookies stay at the edge"
    );

    assert_eq!(
        envoy.stat("wasmcustom.cognito_edge_auth.login.failed"),
        Some(1),
        "only the forged callback failed"
    );
    let log = envoy.log();
    for (name, value) in &proxy_env {
        assert!(
            !log.contains(value.as_str()),
            "{name} appears in Envoy's log"
        );
    }
}

// ---------------------------------------------------------------------------------------
// make oci

#[test]
fn oci_layout_holds_the_exact_wasm_with_matching_digests() {
    let wasm = std::fs::read(wasm_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = |sub: &str| -> PathBuf {
        let target = dir.path().join(sub);
        let run = Command::new("python3")
            .arg(repo("scripts/oci.py"))
            .arg(wasm_path())
            .arg(&target)
            .arg("9.9.9-test")
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "scripts/oci.py: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        target
    };
    let first = out("a");
    let layout = first.join("layout");
    let blob = |digest: &str| -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").unwrap();
        let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
        assert_eq!(
            sha256(&bytes),
            digest,
            "blob content does not match its name"
        );
        bytes
    };
    let fetch = |d: &Value| -> Vec<u8> {
        let bytes = blob(d["digest"].as_str().unwrap());
        assert_eq!(Some(bytes.len() as u64), d["size"].as_u64(), "size of {d}");
        bytes
    };

    let oci_layout: Value =
        serde_json::from_slice(&std::fs::read(layout.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(oci_layout, json!({ "imageLayoutVersion": "1.0.0" }));
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    let m = &index["manifests"][0];
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["annotations"]["org.opencontainers.image.ref.name"],
        "9.9.9-test"
    );
    let manifest: Value = serde_json::from_slice(&fetch(m)).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    // The "compat" variant of the Wasm image spec, which Istio's puller tries first.
    assert_eq!(
        manifest["annotations"]["module.wasm.image/variant"],
        "compat"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let config: Value = serde_json::from_slice(&fetch(&manifest["config"])).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let mut layer_tar = Vec::new();
    flate2::read::GzDecoder::new(&fetch(&layers[0])[..])
        .read_to_end(&mut layer_tar)
        .unwrap();
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(config["rootfs"]["diff_ids"], json!([sha256(&layer_tar)]));
    assert_eq!(
        (config["os"].as_str(), config["architecture"].as_str()),
        (Some("wasip1"), Some("wasm"))
    );
    let files = tar_files(&layer_tar);
    assert_eq!(files.keys().collect::<Vec<_>>(), ["plugin.wasm"]);
    assert!(
        files["plugin.wasm"] == wasm,
        "plugin.wasm is not the built .wasm"
    );

    // No stray blobs; the tarball is the layout; the same input gives the same bytes.
    let blobs = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 3, "manifest, config, layer");
    let archive = std::fs::read(first.join("cognito-edge-auth-9.9.9-test.tar")).unwrap();
    let in_archive = tar_files(&archive);
    assert_eq!(in_archive.len(), 5);
    for (name, bytes) in &in_archive {
        assert!(
            std::fs::read(layout.join(name)).unwrap() == *bytes,
            "{name} differs between the tarball and the layout"
        );
    }
    let again = std::fs::read(out("b").join("cognito-edge-auth-9.9.9-test.tar")).unwrap();
    assert!(archive == again, "make oci is not reproducible");
    eprintln!(
        "oci: manifest {} ; tarball {} bytes, {}",
        m["digest"].as_str().unwrap(),
        archive.len(),
        sha256(&archive)
    );
}

// ---------------------------------------------------------------------------------------
// Helpers

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml_docs(path: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(&read(path))
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

fn yaml_one(path: &str) -> Value {
    let mut docs = yaml_docs(path);
    assert_eq!(docs.len(), 1, "{path}");
    docs.remove(0)
}

/// What the filter receives from Istio: `pluginConfig` (a protobuf Struct) as JSON text.
fn istio_plugin_config(plugin_config: &Value) -> Value {
    serde_json::from_str(&serde_json::to_string(plugin_config).unwrap()).unwrap()
}

/// The one HttpConnectionManager of a bootstrap with one listener.
fn only_hcm(bootstrap: &Value) -> &Value {
    let listeners = bootstrap["static_resources"]["listeners"]
        .as_array()
        .unwrap();
    assert_eq!(listeners.len(), 1);
    &listeners[0]["filter_chains"][0]["filters"][0]["typed_config"]
}

fn wasm_plugin_config(bootstrap: &mut Value) -> &mut Value {
    let filters = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["http_filters"]
        .as_array_mut()
        .unwrap();
    let wasm = filters
        .iter_mut()
        .find(|f| f["name"] == "envoy.filters.http.wasm")
        .unwrap();
    &mut wasm["typed_config"]["config"]
}

/// The filter's JSON configuration inside a bootstrap.
fn filter_config(bootstrap: &Value) -> Value {
    let mut b = bootstrap.clone();
    let text = wasm_plugin_config(&mut b)["configuration"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("the filter configuration: {e}"))
}

fn set_wasm(bootstrap: &mut Value) {
    wasm_plugin_config(bootstrap)["vm_config"]["code"]["local"]["filename"] =
        wasm_path().to_string_lossy().into();
}

/// Config::parse on a filter configuration, with `env` as the VM's environment.
fn check_filter_config(what: &str, config: &Value, env: &[(String, String)]) {
    if let Err(e) = Config::parse_with_env(config.to_string().as_bytes(), &|name| lookup(env, name))
    {
        panic!("{what}: the filter configuration is refused: {e}");
    }
}

/// `envoy --mode validate` on a YAML configuration, Envoy's environment holding `LOGIN_ENV`;
/// (accepted, log).
fn envoy_validate(yaml: &str) -> (bool, String) {
    let env: Vec<(String, String)> = LOGIN_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    envoy_validate_with(yaml, &env)
}

/// `envoy --mode validate` with exactly `env` added to Envoy's environment (the examples'
/// variables are removed from the test's own first).
fn envoy_validate_with(yaml: &str, env: &[(String, String)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, yaml).unwrap();
    let mut command = Command::new(envoy_bin());
    for (name, _) in LOGIN_ENV {
        command.env_remove(name);
    }
    let out = command
        .args([
            "--mode",
            "validate",
            "--use-dynamic-base-id",
            "-l",
            "info",
            "-c",
        ])
        .arg(&path)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), log)
}

/// Makes a production bootstrap runnable in a test: the built .wasm, ports chosen by the OS
/// on loopback, and each named cluster sent to a local plain-HTTP port (TLS and DNS are what
/// `--mode validate` checked).
fn runnable(bootstrap: &mut Value, clusters: &[(&str, u16)]) {
    set_wasm(bootstrap);
    bootstrap["admin"]["address"]["socket_address"]["port_value"] = 0.into();
    let listener = &mut bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"];
    listener["address"] = "127.0.0.1".into();
    listener["port_value"] = 0.into();
    let all = bootstrap["static_resources"]["clusters"]
        .as_array_mut()
        .unwrap();
    assert_eq!(all.len(), clusters.len());
    for c in all {
        let name = c["name"].as_str().unwrap().to_string();
        let port = clusters.iter().find(|(n, _)| *n == name).unwrap().1;
        let map = c.as_object_mut().unwrap();
        map.remove("transport_socket");
        map.remove("dns_lookup_family");
        map.insert("type".into(), "STATIC".into());
        c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"] = json!({ "address": "127.0.0.1", "port_value": port });
    }
}

fn cluster_named<'b>(bootstrap: &'b Value, name: &str) -> Option<&'b Value> {
    bootstrap["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
}

/// A cluster's single endpoint.
fn endpoint(cluster: &Value) -> (String, u64) {
    let endpoints = cluster["load_assignment"]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    let lb = endpoints[0]["lb_endpoints"].as_array().unwrap();
    assert_eq!(lb.len(), 1);
    let a = &lb[0]["endpoint"]["address"]["socket_address"];
    (
        a["address"].as_str().unwrap().to_string(),
        a["port_value"].as_u64().unwrap(),
    )
}

/// `us-east-1_Abc` → `us-east-1`.
fn region(pool: &str) -> &str {
    pool.split_once('_').unwrap().0
}

fn known_fields(object: &Value, known: &[&str], what: &str) {
    for key in object.as_object().unwrap().keys() {
        assert!(known.contains(&key.as_str()), "{what}: unknown field {key}");
    }
}

/// An enum field: absent, or one of `values`.
fn one_of(object: &Value, field: &str, values: &[&str]) {
    if let Some(v) = object.get(field) {
        let v = v.as_str().unwrap();
        assert!(values.contains(&v), "{field}: {v} is not one of {values:?}");
    }
}

fn sha256(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The regular files of a tar archive, by path.
fn tar_files(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in tar::Archive::new(archive).entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_dir() {
            continue;
        }
        assert!(entry.header().entry_type().is_file());
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        files.insert(path, bytes);
    }
    files
}

fn canned(status: u16, body: String) -> Canned {
    Canned {
        status,
        body: body.into_bytes(),
        delay: Duration::ZERO,
        hang_up: false,
    }
}

fn header(headers: &[(String, String)], name: &str) -> String {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// A header the upstream received, from its echo.
fn header_of(reply: &Reply, name: &str) -> String {
    reply.json()["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == name)
        .and_then(|h| h[1].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Retries while the keys load (503); the reply once it is 200.
fn wait_for_200(envoy: &Envoy, path: &str, token: &str) -> Reply {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let r = get_with_token(envoy.port, path, token);
        if r.status == 200 {
            return r;
        }
        assert!(
            r.status == 503 && Instant::now() < deadline,
            "{path}: {} {}\n{}",
            r.status,
            r.body,
            envoy.log()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// The ServiceEntry and the DestinationRule of an egress file, checked against the fields of
/// istio/api networking/v1 (service_entry.proto, destination_rule.proto).
fn istio_egress(file: &str) -> (Value, Value) {
    let docs = yaml_docs(file);
    assert_eq!(docs.len(), 2, "{file}");
    let entry = docs
        .iter()
        .find(|d| d["kind"] == "ServiceEntry")
        .expect("a ServiceEntry")
        .clone();
    let rule = docs
        .iter()
        .find(|d| d["kind"] == "DestinationRule")
        .expect("a DestinationRule")
        .clone();

    assert_eq!(entry["apiVersion"], "networking.istio.io/v1", "{file}");
    known_fields(
        &entry["spec"],
        &[
            "hosts",
            "addresses",
            "ports",
            "location",
            "resolution",
            "endpoints",
            "workloadSelector",
            "exportTo",
            "subjectAltNames",
        ],
        "ServiceEntry.spec",
    );
    one_of(
        &entry["spec"],
        "location",
        &["MESH_EXTERNAL", "MESH_INTERNAL"],
    );
    one_of(
        &entry["spec"],
        "resolution",
        &["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN"],
    );
    for p in entry["spec"]["ports"].as_array().unwrap() {
        known_fields(
            p,
            &["number", "protocol", "name", "targetPort"],
            "ServiceEntry port",
        );
        assert!(p["name"].is_string() && p["number"].is_u64());
        one_of(
            p,
            "protocol",
            &["HTTP", "HTTPS", "GRPC", "HTTP2", "MONGO", "TCP", "TLS"],
        );
    }
    assert_eq!(rule["apiVersion"], "networking.istio.io/v1", "{file}");
    known_fields(
        &rule["spec"],
        &[
            "host",
            "trafficPolicy",
            "subsets",
            "exportTo",
            "workloadSelector",
        ],
        "DestinationRule.spec",
    );
    let tls = &rule["spec"]["trafficPolicy"]["tls"];
    known_fields(
        tls,
        &[
            "mode",
            "clientCertificate",
            "privateKey",
            "caCertificates",
            "credentialName",
            "subjectAltNames",
            "sni",
            "insecureSkipVerify",
            "caCrl",
        ],
        "DestinationRule.spec.trafficPolicy.tls",
    );
    one_of(
        tls,
        "mode",
        &["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"],
    );
    (entry, rule)
}

/// Istio names a ServiceEntry's cluster `outbound|<port>|<subset>|<host>`: (host, port).
fn istio_outbound_cluster(cluster: &str) -> (&str, u64) {
    let parts: Vec<&str> = cluster.split('|').collect();
    assert_eq!(parts.len(), 4, "{cluster}");
    assert_eq!((parts[0], parts[2]), ("outbound", ""), "{cluster}");
    (parts[3], parts[1].parse().unwrap())
}

/// The ServiceEntry makes the cluster for `host:port` (external, DNS), and the DestinationRule
/// originates TLS on it to that host: SNI, the system CAs, the certificate's name checked.
fn check_tls_origination(entry: &Value, rule: &Value, host: &str, port: u64) {
    assert_eq!(entry["spec"]["hosts"], json!([host]));
    assert_eq!(entry["spec"]["location"], "MESH_EXTERNAL");
    assert_eq!(entry["spec"]["resolution"], "DNS");
    assert!(
        entry["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["number"].as_u64() == Some(port)),
        "{host}: no port {port}"
    );
    assert_eq!(rule["spec"]["host"], host);
    let tls = &rule["spec"]["trafficPolicy"]["tls"];
    assert_eq!(tls["mode"], "SIMPLE");
    assert_eq!(tls["sni"], host);
    assert_eq!(tls["subjectAltNames"], json!([host]));
    assert_eq!(tls["caCertificates"], SYSTEM_CA);
    assert_ne!(tls["insecureSkipVerify"], true);
}

/// `[A-Za-z_][A-Za-z0-9_]*`
fn is_c_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The host of `login.domain` (an https URL without a path).
fn domain_host(login: &Value) -> &str {
    let domain = login["domain"].as_str().unwrap();
    let host = domain
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("{domain}"));
    assert!(
        !host.is_empty() && !host.contains(['/', ':', '?']),
        "{domain}"
    );
    host
}

/// The environment variables a `login` section reads its secrets from.
fn login_env_names(login: &Value) -> BTreeSet<String> {
    assert!(
        login.get("client_secret").is_none(),
        "the client secret must not be inline"
    );
    [
        "client_secret_env",
        "cookie_key_env",
        "previous_cookie_key_env",
    ]
    .iter()
    .filter_map(|field| login.get(*field))
    .map(|v| v.as_str().unwrap().to_string())
    .collect()
}

/// `login.token_cluster` is a cluster of the bootstrap that reaches `login.domain` on 443 over
/// verified TLS.
fn check_token_cluster(file: &str, bootstrap: &Value, login: &Value) {
    let host = domain_host(login);
    let name = login["token_cluster"].as_str().unwrap();
    let cluster =
        cluster_named(bootstrap, name).unwrap_or_else(|| panic!("{file}: no cluster {name}"));
    assert_eq!(endpoint(cluster), (host.to_string(), 443), "{file}: {name}");
    assert_eq!(cluster["type"], "LOGICAL_DNS", "{file}: {name}");
    assert_verified_tls(file, cluster, host);
}

/// The cluster speaks TLS with SNI `host`, checks the chain against the system CAs and the
/// certificate against `host`.
fn assert_verified_tls(file: &str, cluster: &Value, host: &str) {
    let tls = &cluster["transport_socket"]["typed_config"];
    assert_eq!(
        tls["@type"],
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "{file}"
    );
    assert_eq!(tls["sni"], host, "{file}");
    let validation = &tls["common_tls_context"]["validation_context"];
    assert_eq!(validation["trusted_ca"]["filename"], SYSTEM_CA, "{file}");
    assert_eq!(
        validation["match_typed_subject_alt_names"],
        json!([{ "san_type": "DNS", "matcher": { "exact": host } }]),
        "{file}: the certificate must be checked for the host name"
    );
}

/// The sign-in's Secret, with its keys in `stringData`.
fn login_secret() -> Value {
    let secret = yaml_one(LOGIN_SECRET);
    assert_eq!(
        (secret["apiVersion"].as_str(), secret["kind"].as_str()),
        (Some("v1"), Some("Secret"))
    );
    assert_eq!(secret["type"], "Opaque");
    assert!(
        secret.get("data").is_none(),
        "placeholders only, in stringData"
    );
    assert!(secret["stringData"]
        .as_object()
        .unwrap()
        .values()
        .all(Value::is_string));
    secret
}

fn secret_keys(secret: &Value) -> BTreeSet<String> {
    secret["stringData"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// A container's `env`: every entry a `secretKeyRef` to a key of `secret` that is not
/// optional (a missing key keeps the container from starting). (name, key) in order.
fn secret_env(container: &Value, secret: &Value) -> Vec<(String, String)> {
    let mut names = BTreeSet::new();
    container["env"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no env", container["name"]))
        .iter()
        .map(|e| {
            known_fields(e, &["name", "valueFrom"], "env[]");
            known_fields(&e["valueFrom"], &["secretKeyRef"], "env[].valueFrom");
            let name = e["name"].as_str().unwrap().to_string();
            assert!(names.insert(name.clone()), "{name} twice");
            let r = &e["valueFrom"]["secretKeyRef"];
            known_fields(r, &["name", "key", "optional"], "secretKeyRef");
            assert_eq!(r["name"], secret["metadata"]["name"], "{name}");
            assert_ne!(
                r["optional"], true,
                "{name}: a missing key must stop the container"
            );
            let key = r["key"].as_str().unwrap().to_string();
            assert!(
                secret_keys(secret).contains(&key),
                "{name}: no key {key} in the Secret"
            );
            (name, key)
        })
        .collect()
}

/// Only the container `holder` of the pod gets anything from `secret`.
fn only_holder_of(pod: &Value, holder: &str, secret: &Value) {
    let name = secret["metadata"]["name"].as_str().unwrap();
    for c in pod["containers"].as_array().unwrap() {
        if c["name"] != holder {
            assert!(
                !c.to_string().contains(name),
                "{}: only {holder} may see the Secret {name}",
                c["name"]
            );
        }
    }
    assert!(pod.get("initContainers").is_none());
    assert!(
        !pod["volumes"].to_string().contains(name),
        "the Secret is not mounted"
    );
}

fn container<'p>(pod: &'p Value, name: &str) -> &'p Value {
    pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// A value for a key of the sign-in's Secret, as the tests fill it.
fn test_secret(key: &str) -> Option<String> {
    TEST_SECRET
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

/// A container's environment from its `secret_env`, the Secret's values from `value`.
fn env_from_secret(
    env: &[(String, String)],
    value: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    env.iter()
        .map(|(name, key)| {
            let v = value(key).unwrap_or_else(|| panic!("no value for the Secret's {key}"));
            (name.clone(), v)
        })
        .collect()
}

fn lookup(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

/// A test value for each variable the examples name (`LOGIN_ENV`), as if Envoy's environment
/// held it.
fn login_env(name: &str) -> Option<String> {
    LOGIN_ENV
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
}

/// The VM's environment from Envoy's `vm_config`: each of `host_env_keys` that Envoy's
/// environment (`host`) has, and `key_values`.
fn envoy_vm_env(vm_config: &Value, host: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let vars = &vm_config["environment_variables"];
    let mut env: Vec<(String, String)> = vars["host_env_keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| {
            let k = k.as_str().unwrap();
            host(k).map(|v| (k.to_string(), v))
        })
        .collect();
    for (k, v) in vars["key_values"].as_object().into_iter().flatten() {
        env.push((k.clone(), v.as_str().unwrap().to_string()));
    }
    env
}

/// The `vm_config.environment_variables` Istio makes of a WasmPlugin's `vmConfig.env`: HOST
/// names are `host_env_keys` (read from the proxy's environment), INLINE values `key_values`.
fn istio_environment_variables(spec: &Value) -> Value {
    let mut vars = json!({ "host_env_keys": [], "key_values": {} });
    for e in spec["vmConfig"]["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap();
        if e["valueFrom"] == "HOST" {
            vars["host_env_keys"]
                .as_array_mut()
                .unwrap()
                .push(name.into());
        } else {
            vars["key_values"][name] = e.get("value").cloned().unwrap_or_else(|| "".into());
        }
    }
    vars
}

/// The VM's environment from a WasmPlugin, the proxy's environment being `host`.
fn istio_vm_env(spec: &Value, host: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let vm_config = json!({ "environment_variables": istio_environment_variables(spec) });
    envoy_vm_env(&vm_config, host)
}

/// The parameters of a URL's query, percent-decoded.
fn query_params(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .unwrap_or_else(|| panic!("bad escape in {s}"));
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
