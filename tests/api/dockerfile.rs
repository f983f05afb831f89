//! The container image and the compose file, checked without Docker: the `Dockerfile` and
//! `docker-compose.yml` are parsed (line by line; no YAML crate) and held against the settings
//! the binary loads with the image's environment (`Settings::load_from`, run from the image's
//! WORKDIR). Every file the daemon writes must land in a VOLUME, the daemon must run as a
//! numeric non-root user, EXPOSE must be the default port, the health check must be the
//! binary's own, and compose must wire the daemon to its PostgreSQL and Redis.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use clap::Parser;
use secrecy::ExposeSecret;
use wafleet::cli::Cli;
use wafleet::config::{DatabaseKind, Settings};

fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One instruction of the final stage: keyword (upper case) and its arguments.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The final stage's instructions (continuation lines joined, comments dropped) and its base
/// image.
fn final_stage(dockerfile: &str) -> (String, Vec<Instruction>) {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue; // a comment inside a continued instruction
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut base = String::new();
    let mut stage = Vec::new();
    for line in logical {
        let (keyword, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let keyword = keyword.to_ascii_uppercase();
        if keyword == "FROM" {
            base = args
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            stage.clear();
            continue;
        }
        stage.push(Instruction {
            keyword,
            args: args.trim().to_string(),
        });
    }
    (base, stage)
}

/// `ENV A=1 B="two"` (or the old `ENV A 1`) as pairs.
fn env_pairs(args: &str) -> Vec<(String, String)> {
    if !args.contains('=')
        || args
            .split_whitespace()
            .next()
            .is_some_and(|w| !w.contains('='))
    {
        let (key, value) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
        return vec![(key.to_string(), value.trim().to_string())];
    }
    let mut pairs = Vec::new();
    let mut rest = args.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
        } else {
            after.split_once(char::is_whitespace).unwrap_or((after, ""))
        };
        pairs.push((key.trim().to_string(), value.to_string()));
        rest = next.trim();
    }
    pairs
}

/// `["/data", "/x"]` or `/data /x` as paths.
fn list_args(args: &str) -> Vec<String> {
    args.trim()
        .trim_matches(|c| c == '[' || c == ']')
        .split([',', ' '])
        .map(|p| p.trim().trim_matches('"').to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// `path` made absolute against `dir`, with `.` and `..` resolved.
fn absolute(dir: &Path, path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in dir.join(path).components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// What the image says, read from the Dockerfile.
struct Image {
    base: String,
    stage: Vec<Instruction>,
    env: HashMap<String, String>,
    workdir: PathBuf,
    volumes: Vec<PathBuf>,
}

impl Image {
    fn read() -> Image {
        let (base, stage) = final_stage(&repo_file("Dockerfile"));
        let mut env = HashMap::new();
        let mut workdir = PathBuf::from("/");
        let mut volumes = Vec::new();
        for i in &stage {
            match i.keyword.as_str() {
                "ENV" => env.extend(env_pairs(&i.args)),
                "WORKDIR" => workdir = absolute(&workdir, Path::new(&i.args)),
                "VOLUME" => volumes.extend(list_args(&i.args).into_iter().map(PathBuf::from)),
                _ => {}
            }
        }
        Image {
            base,
            stage,
            env,
            workdir,
            volumes,
        }
    }

    fn all(&self, keyword: &str) -> Vec<&str> {
        self.stage
            .iter()
            .filter(|i| i.keyword == keyword)
            .map(|i| i.args.as_str())
            .collect()
    }

    fn last(&self, keyword: &str) -> Option<&str> {
        self.all(keyword).last().copied()
    }

    /// The settings `wafleet serve` loads in the image, plus `extra` (compose's environment).
    /// The image copies `config/` into its WORKDIR; the repository's copy stands in for it.
    fn settings(&self, extra: &HashMap<String, String>) -> Settings {
        let mut env = self.env.clone();
        env.extend(extra.clone());
        let cli = Cli::parse_from(["wafleet", "serve"]);
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        Settings::load_from(&cli, &config, &env).unwrap()
    }

    /// Every file or directory the daemon writes, made absolute against WORKDIR.
    fn written_paths(&self, settings: &Settings) -> Vec<(&'static str, PathBuf)> {
        let mut paths = vec![
            ("chat.media_dir", settings.chat.media_dir.clone()),
            (
                "auth.admin_password_file",
                settings.auth.admin_password_file.clone(),
            ),
        ];
        if let DatabaseKind::Sqlite(db) = settings.database.kind().unwrap() {
            // The migration lock lives beside the database file.
            let mut lock = db.clone().into_os_string();
            lock.push(".migrate.lock");
            paths.push(("database.url", db));
            paths.push(("database.url (migration lock)", lock.into()));
        }
        paths
            .into_iter()
            .map(|(key, path)| (key, absolute(&self.workdir, &path)))
            .collect()
    }

    fn assert_writes_only_to_volumes(&self, settings: &Settings) {
        for (key, path) in self.written_paths(settings) {
            assert!(
                self.volumes.iter().any(|v| path.starts_with(v)),
                "{key} = {} is not in a VOLUME ({:?}): the non-root user cannot write there \
                 and it would not survive the container",
                path.display(),
                self.volumes
            );
        }
    }
}

#[test]
fn every_file_the_daemon_writes_is_in_a_volume() {
    let image = Image::read();
    assert!(!image.volumes.is_empty(), "the image declares no VOLUME");
    let settings = image.settings(&HashMap::new());
    image.assert_writes_only_to_volumes(&settings);
    // …also with the database moved to PostgreSQL (DB_URI beats the image's DATABASE_URL).
    let postgres = HashMap::from([("DB_URI".to_string(), "postgres://u@db/x".to_string())]);
    let settings = image.settings(&postgres);
    assert_eq!(settings.database.kind().unwrap(), DatabaseKind::Postgres);
    image.assert_writes_only_to_volumes(&settings);
    // The volume directory is made for the non-root user.
    let user = image.last("USER").unwrap_or_default().to_string();
    let uid = user.split(':').next().unwrap_or_default().to_string();
    for volume in &image.volumes {
        let volume = volume.display().to_string();
        let made = image
            .stage
            .iter()
            .filter(|i| i.keyword == "RUN" || i.keyword == "COPY")
            .any(|i| {
                i.args.contains(&volume)
                    && i.args.contains("chown")
                    && (i.args.contains(&uid) || i.args.contains("wafleet"))
            });
        assert!(made, "VOLUME {volume} is not created owned by uid {uid}");
    }
}

#[test]
fn the_image_runs_as_a_numeric_non_root_user_without_curl() {
    let image = Image::read();
    assert!(
        ["debian:bookworm-slim", "gcr.io/distroless/cc-debian12"]
            .iter()
            .any(|b| image.base.starts_with(b)),
        "final image {}",
        image.base
    );
    let user = image.last("USER").expect("the final stage sets USER");
    for id in user.split(':') {
        let id: u32 = id
            .parse()
            .unwrap_or_else(|_| panic!("USER {user} is not numeric"));
        assert_ne!(id, 0, "USER {user} is root");
    }
    let dockerfile = repo_file("Dockerfile");
    for line in dockerfile
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
    {
        assert!(
            !line.to_ascii_lowercase().contains("curl"),
            "curl is still used: {line}"
        );
    }
    assert_eq!(
        image.env.get("MALLOC_ARENA_MAX").map(String::as_str),
        Some("2"),
        "MALLOC_ARENA_MAX=2 (see limit_malloc_arenas in src/main.rs)"
    );
    let settings = image.settings(&HashMap::new());
    let exposed: Vec<u16> = image
        .all("EXPOSE")
        .iter()
        .flat_map(|args| list_args(args))
        .map(|p| p.trim_end_matches("/tcp").parse().unwrap())
        .collect();
    assert_eq!(
        exposed,
        [settings.server.port],
        "EXPOSE is the default port"
    );

    let health = image.last("HEALTHCHECK").expect("a HEALTHCHECK");
    let command = health.split_once("CMD").map(|(_, c)| c).unwrap_or_default();
    let words = list_args(command);
    assert!(
        words.windows(2).any(|w| w == ["wafleet", "healthcheck"])
            || words
                .windows(2)
                .any(|w| w[0].ends_with("/wafleet") && w[1] == "healthcheck"),
        "HEALTHCHECK runs {command}, not `wafleet healthcheck`"
    );
    // The binary, and the configuration it reads from WORKDIR/config.
    let copies = image.all("COPY");
    assert!(
        copies
            .iter()
            .any(|c| c.contains("--from=") && c.contains("wafleet")),
        "the binary is copied from the build stage: {copies:?}"
    );
    let config_dest = image.workdir.join("config");
    assert!(
        copies.iter().any(|c| {
            let words = list_args(c);
            words.first().map(String::as_str) == Some("config")
                && words.last().map(|d| absolute(&image.workdir, Path::new(d)))
                    == Some(config_dest.clone())
        }),
        "config/ is copied to {}: {copies:?}",
        config_dest.display()
    );
    let entrypoint = image.last("ENTRYPOINT").map(list_args);
    assert!(
        entrypoint
            .as_deref()
            .is_some_and(|e| e.len() == 1 && (e[0] == "wafleet" || e[0].ends_with("/wafleet"))),
        "ENTRYPOINT is the binary: {entrypoint:?}"
    );
}

/// The services of a compose file: name → the lines of its block (indent removed by two).
fn services(compose: &str) -> (Vec<(String, Vec<String>)>, Vec<String>) {
    let mut services: Vec<(String, Vec<String>)> = Vec::new();
    let mut volumes = Vec::new();
    let mut section = "";
    for line in compose.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        match indent {
            0 => {
                section = if text == "services:" {
                    "services"
                } else if text == "volumes:" {
                    "volumes"
                } else {
                    ""
                }
            }
            2 if section == "services" => {
                services.push((text.trim_end_matches(':').to_string(), Vec::new()));
            }
            2 if section == "volumes" => volumes.push(text.trim_end_matches(':').to_string()),
            _ if section == "services" => {
                if let Some((_, lines)) = services.last_mut() {
                    lines.push(line[2.min(line.len())..].to_string());
                }
            }
            _ => {}
        }
    }
    (services, volumes)
}

/// The entries of `key:` in a service block: list items (`- x`) or map entries (`k: v` as
/// `k=v`), unquoted.
fn entries(block: &[String], key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in block {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if indent == 2 {
            inside = text == format!("{key}:");
            if let Some(inline) = text.strip_prefix(&format!("{key}:")) {
                if !inline.trim().is_empty() {
                    out.push(inline.trim().trim_matches('"').to_string());
                }
            }
            continue;
        }
        if inside && indent == 4 {
            let item = match text.strip_prefix("- ") {
                Some(item) => item.trim().trim_matches('"').to_string(),
                None => match text.split_once(':') {
                    Some((k, v)) => format!("{}={}", k.trim(), v.trim().trim_matches('"')),
                    None => text.to_string(),
                },
            };
            out.push(item);
        }
    }
    out
}

/// `${NAME:-default}` replaced by its default, as compose does with an unset NAME.
fn substitute_defaults(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let inner = &rest[start + 2..start + end];
        out.push_str(inner.split_once(":-").map(|(_, d)| d).unwrap_or(""));
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn compose_runs_the_daemon_with_postgres_and_redis() {
    let compose = repo_file("docker-compose.yml");
    let (services, declared_volumes) = services(&compose);
    let block = |name: &str| -> &[String] {
        services
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice())
            .unwrap_or_else(|| panic!("no service {name}: {services:?}"))
    };
    let image_of = |name: &str| {
        entries(block(name), "image")
            .first()
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        image_of("postgres").starts_with("postgres:16"),
        "{}",
        image_of("postgres")
    );
    assert!(
        image_of("redis").starts_with("redis:7"),
        "{}",
        image_of("redis")
    );
    for name in ["wafleet", "postgres", "redis"] {
        assert!(
            block(name).iter().any(|l| l.trim() == "healthcheck:"),
            "{name} has no healthcheck"
        );
    }
    let daemon = block("wafleet");
    assert!(
        daemon.iter().any(|l| l.trim().starts_with("build:")),
        "the daemon is built from this repository"
    );
    let test = entries(daemon, "healthcheck").join(" ");
    assert!(
        test.contains("wafleet") && test.contains("healthcheck"),
        "{test}"
    );

    // Its environment reaches the other two services by their names.
    let env: HashMap<String, String> = entries(daemon, "environment")
        .iter()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), substitute_defaults(v)))
        .collect();
    let db = env.get("DB_URI").expect("DB_URI");
    assert!(
        db.starts_with("postgres://") && db.contains("@postgres:5432/"),
        "{db}"
    );
    let redis = env.get("REDIS_URL").expect("REDIS_URL");
    assert!(redis.starts_with("redis://redis:6379"), "{redis}");
    let depends = entries(daemon, "depends_on").join(" ");
    for name in ["postgres", "redis"] {
        assert!(
            depends.contains(name),
            "the daemon waits for {name}: {depends}"
        );
    }
    assert!(
        daemon
            .iter()
            .filter(|l| l.trim() == "condition: service_healthy")
            .count()
            >= 2,
        "the daemon waits until both are healthy"
    );

    // With that environment the image still writes only to its volume, which compose mounts.
    let image = Image::read();
    let settings = image.settings(&env);
    assert_eq!(settings.database.kind().unwrap(), DatabaseKind::Postgres);
    assert!(!settings.redis.url.expose_secret().is_empty());
    image.assert_writes_only_to_volumes(&settings);
    let mounts = entries(daemon, "volumes");
    for volume in &image.volumes {
        let target = format!(":{}", volume.display());
        let mount = mounts
            .iter()
            .find(|m| m.ends_with(&target) || m.contains(&format!("{target}:")))
            .unwrap_or_else(|| panic!("{} is not mounted: {mounts:?}", volume.display()));
        let source = mount.split(':').next().unwrap_or_default();
        assert!(
            declared_volumes.iter().any(|v| v == source),
            "named volume {source} is not declared: {declared_volumes:?}"
        );
    }
    let pg_mounts = entries(block("postgres"), "volumes").join(" ");
    assert!(
        pg_mounts.contains(":/var/lib/postgresql/data"),
        "{pg_mounts}"
    );
    let ports = entries(daemon, "ports").join(" ");
    assert!(
        ports.contains(&format!(":{}", settings.server.port)),
        "the default port is published: {ports}"
    );
}

#[test]
fn the_parsers_read_what_they_should() {
    assert_eq!(
        env_pairs(r#"A=1 B="two words" C=/x"#),
        [("A", "1"), ("B", "two words"), ("C", "/x")].map(|(k, v)| (k.to_string(), v.to_string()))
    );
    assert_eq!(env_pairs("A 1 2"), [("A".to_string(), "1 2".to_string())]);
    assert_eq!(list_args(r#"["/data", "/x"]"#), ["/data", "/x"]);
    assert_eq!(
        absolute(Path::new("/app"), Path::new("data/media")),
        PathBuf::from("/app/data/media")
    );
    assert_eq!(
        absolute(Path::new("/app"), Path::new("/data/../data/x")),
        PathBuf::from("/data/x")
    );
    assert_eq!(
        substitute_defaults("postgres://u:${PW:-secret}@db/${DB:-x}"),
        "postgres://u:secret@db/x"
    );
    let (base, stage) = final_stage("FROM a AS b\nRUN x \\\n  # note\n  && y\nFROM c\nUSER 1\n");
    assert_eq!(base, "c");
    assert_eq!(stage.len(), 1);
}
