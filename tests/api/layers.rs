//! The layering rule, enforced: a module of `src/` imports only from layers below its own.
//!
//! [`LAYERS`] is the one place the order is written (docs/architecture.md explains it). The
//! test reads every `.rs` file under `src/` as text, finds each path into the crate
//! (`crate::x::…`, `use crate::{x, y::…}`, `wafleet::x` in `main.rs`) and fails, naming file,
//! line and both modules, when a module reaches one in its own layer or above. Route files under
//! `src/web/routes/` must not import each other either: what they share lives in `src/web/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::helpers::rust_files;

/// The top-level modules of `src/`, lowest layer first. A module may import any module of a
/// LOWER row; modules of one row are peers and may not import each other.
const LAYERS: &[&[&str]] = &[
    // Foundations: no import of the crate at all.
    &["clock", "metrics", "cli", "phone", "tls"],
    &["config"],
    &["db", "telemetry"],
    // The outside world: WhatsApp and the accounts that own everything.
    &["whatsapp", "auth"],
    // What the fleet did per device and hour: written by chat and broadcast, read by web.
    &["stats"],
    // Domain, lowest first: the hub knows no feature; chat knows no campaign.
    &["hub", "audit"],
    &["chat"],
    &["device"],
    &["cluster"],
    &["broadcast"],
    // Outbound webhooks: events of every feature, through the hub; signs as broadcast does.
    &["webhooks"],
    // Retention sweeps the tables of chat, broadcast, webhooks and audit by age.
    &["retention"],
    // HTTP, WebSockets, extractors, ErrorCode.
    &["web"],
    // Wiring and the entry points.
    &["startup"],
    &["bench"],
    &["main"],
];

/// Macros exported at the crate root, and the module they belong to.
const ROOT_MACROS: &[(&str, &str)] = &[
    ("db_run", "db"),
    ("db_batch", "db"),
    ("delete_found", "db"),
    ("delete_chunk", "db"),
    ("on_conn", "db"),
    ("multi_row", "db"),
    ("ids_found", "db"),
];

/// The layer (row of [`LAYERS`]) of a top-level module.
fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

/// The top-level module a file under `src/` belongs to (`None` for `lib.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib").then(|| name.to_string())
}

/// The identifiers right after each `prefix` on a line (`crate::` or `wafleet::`), expanding a
/// brace group (`crate::{a::b, c}` → a, c). A group left open at the end of the line continues
/// on the following lines; `open` carries that state.
fn imported_roots(line: &str, prefix: &str, open: &mut bool) -> Vec<String> {
    let mut roots = Vec::new();
    let mut rest = line;
    if *open {
        let (inside, closed) = group_roots(rest);
        roots.extend(inside);
        *open = !closed;
        if *open {
            return roots;
        }
    }
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let (inside, closed) = group_roots(group);
            roots.extend(inside);
            *open = !closed;
            if *open {
                break;
            }
        } else {
            let ident: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !ident.is_empty() {
                roots.push(ident);
            }
        }
    }
    roots
}

/// The first identifier of each top-level item of a brace group's text, and whether the group
/// closed on this text.
fn group_roots(text: &str) -> (Vec<String>, bool) {
    let mut roots = Vec::new();
    let mut depth = 0usize;
    let mut expect_item = true;
    let mut ident = String::new();
    for c in text.chars() {
        if depth == 0 && expect_item {
            if c.is_alphanumeric() || c == '_' {
                ident.push(c);
                continue;
            }
            if !ident.is_empty() {
                roots.push(std::mem::take(&mut ident));
                expect_item = false;
            }
        }
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return (roots, true),
            '}' => depth -= 1,
            ',' if depth == 0 => expect_item = true,
            _ => {}
        }
    }
    if !ident.is_empty() {
        roots.push(ident);
    }
    (roots, false)
}

/// Every upward or sideways import of the crate, as one line each.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in &files {
        let Some(module) = module_of(src, file) else {
            continue;
        };
        let Some(own) = layer_of(&module) else {
            found.push(format!(
                "{}: module `{module}` is in no layer of LAYERS",
                file.display()
            ));
            continue;
        };
        let prefix = if module == "main" {
            "wafleet::"
        } else {
            "crate::"
        };
        let text = std::fs::read_to_string(file).unwrap();
        let mut open = false;
        for (index, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for root in imported_roots(line, prefix, &mut open) {
                let target = ROOT_MACROS
                    .iter()
                    .find(|(name, _)| *name == root)
                    .map_or(root.as_str(), |(_, owner)| owner);
                if target == module || target == "self" {
                    continue;
                }
                let allowed = layer_of(target).is_some_and(|layer| layer < own);
                if !allowed {
                    found.push(format!(
                        "{}:{}: `{module}` imports `{target}`, which is not below it",
                        file.display(),
                        index + 1
                    ));
                }
            }
        }
    }
    found
}

/// Route files that import another route file.
fn route_to_route_imports(routes: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(routes, &mut files);
    let names: BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.file_stem()?.to_str().map(str::to_string))
        .filter(|name| name != "mod")
        .collect();
    let mut found = Vec::new();
    for file in &files {
        let own = file.file_stem().unwrap().to_str().unwrap();
        if own == "mod" {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for (index, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for prefix in ["super::", "crate::web::routes::"] {
                let mut open = false;
                for root in imported_roots(line, prefix, &mut open) {
                    if root != own && names.contains(&root) {
                        found.push(format!(
                            "{}:{}: route file `{own}` imports route file `{root}`",
                            file.display(),
                            index + 1
                        ));
                    }
                }
            }
        }
    }
    found
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn modules_import_only_from_lower_layers() {
    let found = violations(&src_dir());
    assert!(
        found.is_empty(),
        "imports against the layers (lowest first: {LAYERS:?}):\n{}",
        found.join("\n")
    );
}

#[test]
fn route_files_do_not_import_each_other() {
    let found = route_to_route_imports(&src_dir().join("web").join("routes"));
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn an_upward_import_is_caught() {
    // The checker itself: a lower module reaching up, in every form the code uses.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("chat")).unwrap();
    std::fs::write(src.join("db.rs"), "use crate::config::Settings;\n").unwrap();
    std::fs::write(
        src.join("chat").join("store.rs"),
        "use crate::{db::Db,\n    broadcast::leads};\n// crate::web in a comment is fine\nfn f() { crate::web::app(); }\n",
    )
    .unwrap();
    std::fs::write(src.join("hub.rs"), "use crate::db_run;\n").unwrap();
    let found = violations(src);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].contains("`chat` imports `broadcast`"),
        "{found:#?}"
    );
    assert!(found[1].contains("`chat` imports `web`"), "{found:#?}");
    std::fs::write(src.join("db.rs"), "use crate::hub::Hub;\n").unwrap();
    assert!(violations(src)
        .iter()
        .any(|v| v.contains("`db` imports `hub`")));
    std::fs::write(src.join("unknown.rs"), "").unwrap();
    assert!(violations(src).iter().any(|v| v.contains("in no layer")));
}

#[test]
fn a_route_importing_a_route_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path();
    std::fs::write(routes.join("mod.rs"), "pub mod a;\npub mod b;\n").unwrap();
    std::fs::write(routes.join("a.rs"), "use super::b::helper;\n").unwrap();
    std::fs::write(
        routes.join("b.rs"),
        "use crate::web::input::required_text;\n",
    )
    .unwrap();
    let found = route_to_route_imports(routes);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].contains("`a` imports route file `b`"));
}
