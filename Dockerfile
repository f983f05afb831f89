# wafleet container image.
#
#   docker build -t wafleet .
#   docker run -p 3000:3000 -v wafleet-data:/data wafleet
#   docker run -p 3000:3000 -e DB_URI=postgres://user:pass@db/wafleet wafleet
#
# The embedded SQLite database lives in the /data volume. Change the port with -e PORT=…
# (the health check follows PORT), not with `serve --port`.

# ---- build ------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src

# Dependencies first, in a layer of their own that is rebuilt only when Cargo.toml or Cargo.lock
# change: stub sources let cargo compile every dependency before our code is copied in.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && echo '//! Dependency-caching stub.' > src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src

# The crate. config/default.toml, migrations/ and static/ are compiled into the binary.
COPY src ./src
COPY config ./config
COPY migrations ./migrations
COPY static ./static
# COPY keeps the files' own (older) timestamps; touching them makes cargo rebuild our crate
# instead of shipping the stub built above.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && install -m 0755 target/release/wafleet /usr/local/bin/wafleet

# ---- run --------------------------------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates for outbound TLS; curl for HEALTHCHECK only (bookworm-slim has neither).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

# A fixed, non-root uid/gid so volume ownership and runAsNonRoot checks are predictable.
RUN groupadd --gid 10001 wafleet \
 && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin wafleet \
 && mkdir -p /data \
 && chown wafleet:wafleet /data

WORKDIR /app
COPY --from=builder /usr/local/bin/wafleet /usr/local/bin/wafleet
# Read from the working directory: config/default.toml, config/<WAFLEET_ENV>.toml
# (WAFLEET_ENV=production gives JSON logs).
COPY config /app/config

# sqlite:// followed by an absolute path: sqlite:///data/wafleet.db is the file /data/wafleet.db.
# Set as DATABASE_URL rather than DB_URI on purpose: DB_URI wins over DATABASE_URL, so either
# `-e DB_URI=…` or `-e DATABASE_URL=…` replaces this default (with DB_URI here, a user's
# DATABASE_URL would be silently ignored).
ENV DATABASE_URL=sqlite:///data/wafleet.db
# Two malloc arenas (see limit_malloc_arenas in src/main.rs); set here, the daemon need not
# restart itself to get it.
ENV MALLOC_ARENA_MAX=2
VOLUME /data

USER 10001:10001
EXPOSE 3000
# Liveness only; /readyz (database reachable and migrated) is for load balancers.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["sh", "-c", "curl -fsS \"http://127.0.0.1:${PORT:-3000}/healthz\" > /dev/null || exit 1"]

ENTRYPOINT ["wafleet"]
CMD ["serve"]
