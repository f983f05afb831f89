# wafleet container image.
#
#   docker build -t wafleet .
#   docker run -p 3000:3000 -v wafleet-data:/data wafleet
#   docker run -p 3000:3000 -v wafleet-data:/data -e DB_URI=postgres://user:pass@db/wafleet wafleet
#
# Everything the daemon writes lives in the /data volume: the SQLite database, media files and
# the first admin password. docker-compose.yml runs it with PostgreSQL and Redis. Change the port
# with -e PORT=… (the health check follows PORT), not with `serve --port`. More:
# docs/operations.md; tests/api/dockerfile.rs checks this file against the compiled defaults.

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
 && install -m 0755 target/release/wafleet /usr/local/bin/wafleet \
 && mkdir -p /staging/data/media

# ---- run --------------------------------------------------------------------------------------
# gcr.io/distroless/cc-debian12: glibc and libgcc of the same Debian the build stage links
# against, CA roots, no shell, no package manager (the image stays under 80 MB with the
# stripped binary; debian:bookworm-slim alone is 75 MB). The health check is the binary's own,
# and the first admin password is read with `docker cp` (see docker-compose.yml).
FROM gcr.io/distroless/cc-debian12

COPY --from=builder /usr/local/bin/wafleet /usr/local/bin/wafleet
# The volume's directory, made in the build stage (no shell here) and owned by the daemon's
# fixed, numeric, non-root uid/gid, so a named volume starts with this ownership.
COPY --from=builder --chown=10001:10001 /staging/data /data
WORKDIR /app
# Read from the working directory: config/default.toml, config/<WAFLEET_ENV>.toml
# (WAFLEET_ENV=production gives JSON logs).
COPY config /app/config

# Every path the daemon writes, in the volume (the defaults are relative to the working
# directory, /app, which belongs to root and is not persisted):
# sqlite:// followed by an absolute path: sqlite:///data/wafleet.db is the file /data/wafleet.db
# (its migration lock sits beside it). Set as DATABASE_URL rather than DB_URI on purpose: DB_URI
# wins over DATABASE_URL, so either `-e DB_URI=…` or `-e DATABASE_URL=…` replaces this default
# (with DB_URI here, a user's DATABASE_URL would be silently ignored).
ENV DATABASE_URL=sqlite:///data/wafleet.db
# Received and sent media files (also with PostgreSQL).
ENV WAFLEET__CHAT__MEDIA_DIR=/data/media
# The generated first-start admin password (when WAFLEET__ADMIN__PASSWORD is not set).
ENV WAFLEET__AUTH__ADMIN_PASSWORD_FILE=/data/admin-password.txt
# Two malloc arenas (see limit_malloc_arenas in src/main.rs); set here, the daemon need not
# restart itself to get it.
ENV MALLOC_ARENA_MAX=2
VOLUME /data

USER 10001:10001
EXPOSE 3000
# Liveness only; /readyz (database reachable and migrated) is for load balancers.
# `wafleet healthcheck` reads the same settings as the daemon (so it follows PORT) and asks
# GET /healthz on 127.0.0.1 with 2 s timeouts: exit 0 on 200, else 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/wafleet", "healthcheck"]

# SIGTERM starts the orderly stop (server.shutdown_timeout_secs, 8 s: inside Docker's 10 s).
ENTRYPOINT ["/usr/local/bin/wafleet"]
CMD ["serve"]
