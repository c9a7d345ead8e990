//! End to end: route rules mean what the upstream does. Real upstream frameworks — Flask /
//! Werkzeug and Python's stdlib wsgiref (sources in tests/upstreams/) — behind a real Envoy
//! with the filter, over HTTP/1.1 and HTTP/2 cleartext
//! (h2c, prior knowledge), under `envoy/production.yaml`'s path settings and under Envoy's
//! defaults (what docs/configuration.md's snippet and an Istio `WasmPlugin` get).
//!
//! Each path or method form that some upstream reads as another resource than the rules is
//! sent to the upstream directly (to show what it would do) and through Envoy (refused);
//! the legitimate forms are served, and what the upstream saw is asserted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::tokens::{self, id_claims_for, sign};
use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

/// `/public/` for anyone; `/admin` and `/admin/` for admins; DELETE of an item and GET of a
/// report for admins, the rest of them public; anything else needs a token.
fn rules() -> Value {
    json!([
        { "match": { "prefix": "/public/" }, "allow": "public" },
        { "match": { "exact": "/admin" }, "require": { "admin": true } },
        { "match": { "prefix": "/admin/" }, "require": { "admin": true } },
        { "match": { "prefix": "/items/", "methods": ["DELETE"] }, "require": { "admin": true } },
        { "match": { "prefix": "/items/" }, "allow": "public" },
        { "match": { "prefix": "/reports/", "methods": ["GET"] }, "require": { "admin": true } },
        { "match": { "prefix": "/reports/" }, "allow": "public" },
    ])
}

fn user() -> String {
    sign("key1", "k1", &id_claims_for(now(), "user3@example.com"))
}

fn admin() -> String {
    sign("key1", "k1", &id_claims_for(now(), "boss@example.com"))
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Paths {
    /// Envoy's HttpConnectionManager defaults: no normalization, escaped slashes kept.
    Defaults,
    /// `envoy/production.yaml`: normalize_path, merge_slashes, UNESCAPE_AND_REDIRECT.
    Production,
}

/// Envoy with the filter in front of `upstream_port`, and the JWKS server it uses.
struct Edge {
    envoy: Envoy,
    _jwks: JwksServer,
}

fn edge(upstream_port: u16, paths: Paths, extra: Value) -> Edge {
    let jwks = JwksServer::start(&tokens::jwks(&[("key1", "k1")]));
    let mut config = json!({
        "providers": [provider("cognito", jwks.port())],
        "admin_principals": ["boss"],
        "principal_domain": "example.com",
        "rules": rules(),
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let mut b = bootstrap(&config, upstream_port, jwks.port());
    let hcm = &mut b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"];
    hcm["codec_type"] = json!("AUTO"); // HTTP/1.1, and h2c by its connection preface
                                       // Close at once after a local reply (the client reads to the end): not a path setting.
    hcm["delayed_close_timeout"] = json!("0s");
    if paths == Paths::Production {
        hcm["normalize_path"] = json!(true);
        hcm["merge_slashes"] = json!(true);
        hcm["path_with_escaped_slashes_action"] = json!("UNESCAPE_AND_REDIRECT");
        hcm["common_http_protocol_options"] =
            json!({ "headers_with_underscores_action": "DROP_HEADER" });
    }
    let envoy = Envoy::start(&b);
    envoy.wait_for_keys(&user());
    Edge { envoy, _jwks: jwks }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Proto {
    H1,
    H2c,
}

/// One request; `token` as a bearer token. HTTP/1.1 is sent as raw bytes; h2c with curl
/// (prior knowledge, the path as is).
fn call(proto: Proto, port: u16, method: &str, path: &str, token: Option<&str>) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    match proto {
        Proto::H1 => {
            let headers: Vec<(&str, &[u8])> = auth
                .iter()
                .map(|a| ("authorization", a.as_bytes()))
                .collect();
            request(port, method, path, &headers)
        }
        Proto::H2c => {
            let mut cmd = Command::new("curl");
            cmd.args([
                "-s",
                "--http2-prior-knowledge",
                "--path-as-is",
                "--max-time",
                "20",
            ]);
            if method == "HEAD" {
                cmd.arg("--head");
            } else {
                cmd.args(["-X", method]);
            }
            if let Some(a) = &auth {
                cmd.args(["-H", &format!("authorization: {a}")]);
            }
            cmd.args(["-w", "\n@@%{http_code} %{http_version}"]);
            cmd.arg(format!("http://127.0.0.1:{port}{path}"));
            let out = cmd.output().expect("curl (apt install curl)");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let (body, tail) = text
                .rsplit_once("\n@@")
                .unwrap_or_else(|| panic!("curl {method} {path}: {text:?}"));
            let (status, version) = tail.trim().split_once(' ').unwrap();
            assert_eq!(version, "2", "curl did not speak HTTP/2: {text}");
            Reply {
                status: status.parse().unwrap(),
                headers: Vec::new(),
                body: if method == "HEAD" {
                    String::new()
                } else {
                    body.to_string()
                },
            }
        }
    }
}

/// The view that ran upstream, if the request got there.
fn view(r: &Reply) -> Option<String> {
    let v: Value = serde_json::from_str(&r.body).ok()?;
    v["view"].as_str().map(str::to_string)
}

/// Who sends a form: nobody (a public prefix is the trick) or a signed-in non-admin.
#[derive(Clone, Copy)]
enum Who {
    Anonymous,
    User,
}

/// A form that some mainstream upstream reads as a resource the rules guard more strictly.
struct Bypass {
    method: &'static str,
    path: &'static str,
    who: Who,
}

const fn form(method: &'static str, path: &'static str, who: Who) -> Bypass {
    Bypass { method, path, who }
}

const BYPASSES: &[Bypass] = &[
    // path parameters: servlet containers drop ';…' and serve /admin/…
    form("GET", "/admin;/settings", Who::User),
    form("GET", "/admin;jsessionid=0/users/1", Who::User),
    form("DELETE", "/admin;x/users/1", Who::User),
    form("GET", "/public/..;/admin/settings", Who::Anonymous),
    form("GET", "/public/.;/admin", Who::Anonymous),
    form("GET", "/admin%3B/settings", Who::User),
    // %u escapes: Jetty 9.4 and IIS decode them
    form("GET", "/%u0061dmin/settings", Who::User),
    form("GET", "/public/%u002e%u002e/admin/settings", Who::Anonymous),
    // encoded slashes, dots, unreserved characters, double encoding
    form("GET", "/admin%2Fsettings", Who::User),
    form("GET", "/admin%2fsettings", Who::User),
    form("GET", "/%61dmin/settings", Who::User),
    form("GET", "/public/%2e%2e/admin/settings", Who::Anonymous),
    form("GET", "/public/..%2Fadmin/settings", Who::Anonymous),
    form("GET", "/public/..%5Cadmin/settings", Who::Anonymous),
    form("GET", "/%2561dmin/settings", Who::User),
    // dot segments and empty segments
    form("GET", "/public/../admin/settings", Who::Anonymous),
    form("GET", "//admin/settings", Who::User),
    // overlong UTF-8 for '.', control characters
    form("GET", "/public/%C0%AE%C0%AE/admin/settings", Who::Anonymous),
    form("GET", "/admin/%00", Who::User),
    // HEAD runs the GET view, which the GET rule guards
    form("HEAD", "/reports/q1", Who::Anonymous),
];

/// Lower-case methods: Envoy's HTTP/2 codec forwards them; Flask and Django run DELETE.
const METHOD_BYPASSES: &[Bypass] = &[
    form("delete", "/items/1", Who::Anonymous),
    form("Delete", "/items/1", Who::Anonymous),
    form("get", "/reports/q1", Who::Anonymous),
];

/// Sends every bypass form through `edge`: none reaches the view that guards it. Under
/// Envoy's defaults every path form is the filter's 400; under the production settings
/// Envoy rewrites some first (then the rules see the rewritten path: 401/403, or Envoy's
/// redirect for an escaped slash).
fn assert_bypasses_refused(edge: &Edge, proto: Proto, paths: Paths) -> Vec<String> {
    let port = edge.envoy.port;
    let user = user();
    let mut seen = Vec::new();
    let forms = BYPASSES
        .iter()
        .chain(METHOD_BYPASSES.iter().filter(|_| proto == Proto::H2c));
    for f in forms {
        let token = match f.who {
            Who::Anonymous => None,
            Who::User => Some(user.as_str()),
        };
        let r = call(proto, port, f.method, f.path, token);
        let what = format!(
            "{proto:?} {paths:?} {} {} -> {}",
            f.method, f.path, r.status
        );
        assert!(
            !guarded(f.method, &r),
            "{what}: reached the guarded view: {}",
            r.body
        );
        let expected: &[u16] = match (paths, f.method) {
            (_, "HEAD") => &[401],
            (Paths::Defaults, _) => &[400],
            // Envoy's normalization first: `/public/.;/admin` becomes `/public/admin` (200,
            // the public view, which is what the rules saw too; 404 from an upstream that
            // has no such file).
            (Paths::Production, _) => &[200, 400, 401, 403, 404, 307],
        };
        assert!(expected.contains(&r.status), "{what}: {}", r.body);
        // The filter's 400 (Envoy's own codec refuses a few forms first, with no JSON body).
        let filter_400 = r.status == 400 && !r.body.is_empty();
        if filter_400 {
            assert_eq!(r.json()["error"], "invalid_request", "{what}: {}", r.body);
        }
        let what = format!(
            "{what}{}",
            if r.status == 400 && !filter_400 {
                " (Envoy's codec)"
            } else {
                ""
            }
        );
        seen.push(what);
    }
    // Envoy's HTTP/1 codec refuses a lower-case method itself; the filter would too.
    if proto == Proto::H1 {
        let r = call(proto, port, "delete", "/items/1", None);
        assert_eq!(r.status, 400, "{}", r.body);
    }
    seen
}

/// The legitimate forms are served, and the upstream sees what they mean.
fn assert_legitimate_served(edge: &Edge, proto: Proto) {
    let port = edge.envoy.port;
    let (user, admin) = (user(), admin());
    let saw = |method: &str, path: &str, token: Option<&str>, view_: &str| -> Value {
        let r = call(proto, port, method, path, token);
        assert_eq!(r.status, 200, "{proto:?} {method} {path}: {}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["view"], view_, "{proto:?} {method} {path}: {}", r.body);
        v
    };
    let q = saw(
        "GET",
        "/public/a?next=/../admin;x=%u0041&y=%zz%2F\\",
        None,
        "public",
    );
    assert_eq!(q["path"], "/public/a");
    assert_eq!(
        q["query"], "next=/../admin;x=%u0041&y=%zz%2F\\",
        "the query as sent"
    );
    assert_eq!(
        saw("GET", "/public/a%20b", None, "public")["path"],
        "/public/a b"
    );
    assert_eq!(
        saw("GET", "/public/a%2Bb", None, "public")["path"],
        "/public/a+b"
    );
    assert_eq!(
        saw("GET", "/public/k%3Dv", None, "public")["path"],
        "/public/k=v"
    );
    assert_eq!(
        saw("GET", "/public/caf%C3%A9", None, "public")["path"],
        "/public/café"
    );
    assert_eq!(
        saw("GET", "/public/caf%c3%a9/", None, "public")["path"],
        "/public/café/"
    );
    let a = saw("GET", "/admin/settings", Some(&admin), "admin");
    assert_eq!(a["principal"], "boss");
    assert_eq!(
        saw("GET", "/admin", Some(&admin), "admin")["path"],
        "/admin"
    );
    assert_eq!(
        saw("DELETE", "/items/1", Some(&admin), "item-delete")["method"],
        "DELETE"
    );
    assert_eq!(saw("GET", "/items/1", None, "item")["method"], "GET");
    assert_eq!(
        saw("GET", "/reports/q1?a;b", Some(&admin), "report")["query"],
        "a;b"
    );
    assert_eq!(
        saw("GET", "/other/x", Some(&user), "other")["principal"],
        "user3"
    );
    // HEAD as GET: the admin gets it, a user does not.
    assert_eq!(
        call(proto, port, "HEAD", "/reports/q1", Some(&admin)).status,
        200
    );
    assert_eq!(
        call(proto, port, "HEAD", "/reports/q1", Some(&user)).status,
        403
    );
    // The rules themselves still hold for the plain forms.
    assert_eq!(
        call(proto, port, "GET", "/admin/settings", Some(&user)).status,
        403
    );
    assert_eq!(
        call(proto, port, "DELETE", "/items/1", Some(&user)).status,
        403
    );
}

/// Whether a bypass form ran a view that a stricter rule guards: the admin views, DELETE of
/// an item, or the GET view of a report (which HEAD runs).
fn guarded(method: &str, r: &Reply) -> bool {
    match (method, view(r).as_deref()) {
        ("HEAD", _) => r.status == 200,
        (_, Some("admin" | "item-delete")) => true,
        (m, Some("report")) => m != "GET",
        _ => false,
    }
}

/// What the upstream does with the bypass forms when nothing is in front of it: the forms
/// that reach the guarded view (so the test is about real bypasses), by path.
fn reached_directly(upstream_port: u16) -> Vec<&'static str> {
    let mut reached = Vec::new();
    for f in BYPASSES.iter().chain(METHOD_BYPASSES) {
        let r = call(Proto::H1, upstream_port, f.method, f.path, None);
        if guarded(f.method, &r) {
            reached.push(f.path);
        }
    }
    reached
}

fn run_upstream(upstream: &Process, expected_direct: &[&str]) {
    let direct = reached_directly(upstream.port);
    for p in expected_direct {
        assert!(
            direct.contains(p),
            "{p} did not reach the guarded view directly: {direct:?}"
        );
    }
    for paths in [Paths::Defaults, Paths::Production] {
        let edge = edge(upstream.port, paths, json!({}));
        for proto in [Proto::H1, Proto::H2c] {
            let seen = assert_bypasses_refused(&edge, proto, paths);
            eprintln!("{}", seen.join("\n"));
            assert_legitimate_served(&edge, proto);
        }
    }
}

fn upstream_app(file: &str, args: &[&str]) -> Process {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/upstreams")
        .join(file);
    let mut all = vec![script.to_str().unwrap()];
    all.extend_from_slice(args);
    Process::start(&venv_python(), &all)
}

#[test]
fn flask_werkzeug() {
    let flask = upstream_app("flask_app.py", &[]);
    // Werkzeug decodes %2F and %61 in the path, and upper-cases the method; HEAD runs GET.
    run_upstream(
        &flask,
        &[
            "/admin%2Fsettings",
            "/admin%2fsettings",
            "/%61dmin/settings",
            "/items/1",
            "/reports/q1",
        ],
    );
}

#[test]
fn stdlib_wsgiref() {
    let wsgiref = upstream_app("wsgiref_app.py", &[]);
    // wsgiref decodes every escape into PATH_INFO (%2F included) and keeps ';'.
    run_upstream(
        &wsgiref,
        &[
            "/admin%2Fsettings",
            "/%61dmin/settings",
            "/items/1",
            "/reports/q1",
        ],
    );
}

/// A servlet container: Debian's Jetty 9.4 serving static views (tests/upstreams/jetty).
fn jetty() -> (Process, tempfile::TempDir) {
    let home = std::env::var("JETTY_HOME").unwrap_or_else(|_| "/usr/share/jetty9".into());
    let start = PathBuf::from(&home).join("start.jar");
    assert!(
        start.exists(),
        "{} not found: the servlet tests need Debian's jetty9 (make e2e installs it)",
        start.display()
    );
    let base = tempfile::tempdir().unwrap();
    std::fs::write(
        base.path().join("start.ini"),
        "--module=http\n--module=deploy\n",
    )
    .unwrap();
    let webapps = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/upstreams/jetty/webapps");
    std::os::unix::fs::symlink(webapps, base.path().join("webapps")).unwrap();
    let mut java = Command::new("java");
    java.arg("-jar")
        .arg(&start)
        .arg(format!("jetty.home={home}"))
        .arg(format!("jetty.base={}", base.path().display()))
        .args(["jetty.http.host=127.0.0.1", "jetty.http.port=0"]);
    (
        Process::start_logging_port(java, "Started ServerConnector"),
        base,
    )
}

/// Jetty drops `;…` path parameters from each segment and decodes `%uXXXX`: served
/// directly, those forms reach the admin views; behind the filter they never do.
#[test]
fn jetty_servlet_container() {
    let (jetty, _base) = jetty();
    let direct = reached_directly(jetty.port);
    for p in [
        "/admin;/settings",
        "/admin;jsessionid=0/users/1",
        "/%u0061dmin/settings",
        "/admin%2Fsettings",
        "/%61dmin/settings",
    ] {
        assert!(
            direct.contains(&p),
            "{p} did not reach the admin view directly: {direct:?}"
        );
    }
    for paths in [Paths::Defaults, Paths::Production] {
        let edge = edge(jetty.port, paths, json!({}));
        for proto in [Proto::H1, Proto::H2c] {
            let seen = assert_bypasses_refused(&edge, proto, paths);
            eprintln!("{}", seen.join("\n"));
            let admin = call(
                proto,
                edge.envoy.port,
                "GET",
                "/admin/settings",
                Some(&admin()),
            );
            assert_eq!(
                (admin.status, view(&admin).as_deref()),
                (200, Some("admin"))
            );
            let public = call(proto, edge.envoy.port, "GET", "/public/index", None);
            assert_eq!(
                (public.status, view(&public).as_deref()),
                (200, Some("public"))
            );
            let user = call(
                proto,
                edge.envoy.port,
                "GET",
                "/admin/settings",
                Some(&user()),
            );
            assert_eq!(user.status, 403, "{}", user.body);
        }
    }
}

/// An upstream that routes without regard to case (as Express by default, ASP.NET and IIS):
/// `path_case_sensitive: false` makes the rules do the same.
#[test]
fn case_insensitive_upstream() {
    let upstream = upstream_app("wsgiref_app.py", &["--ignore-case"]);
    let direct = call(Proto::H1, upstream.port, "GET", "/ADMIN/settings", None);
    assert_eq!(
        view(&direct).as_deref(),
        Some("admin"),
        "the upstream ignores case"
    );
    let edge = edge(
        upstream.port,
        Paths::Defaults,
        json!({ "path_case_sensitive": false }),
    );
    let user = user();
    for proto in [Proto::H1, Proto::H2c] {
        for path in [
            "/ADMIN/settings",
            "/Admin",
            "/aDmIn/x",
            "/PUBLIC/../admin/x",
        ] {
            let r = call(proto, edge.envoy.port, "GET", path, Some(&user));
            assert!(
                matches!(r.status, 400 | 403),
                "{proto:?} {path}: {} {}",
                r.status,
                r.body
            );
        }
        // ı (dotless i) upper-cases to I: Unicode-aware case folding reads it as /admin.
        let r = call(proto, edge.envoy.port, "GET", "/adm%C4%B1n/x", Some(&user));
        assert_eq!(r.status, 400, "{proto:?}: {}", r.body);
        let r = call(proto, edge.envoy.port, "GET", "/PUBLIC/x", None);
        assert_eq!((r.status, view(&r).as_deref()), (200, Some("public")));
        let r = call(proto, edge.envoy.port, "GET", "/Admin/x", Some(&admin()));
        assert_eq!((r.status, view(&r).as_deref()), (200, Some("admin")));
    }
}
