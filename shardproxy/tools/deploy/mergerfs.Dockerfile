# mergerfs for shardproxy's compose file: joins the rclone mounts into the library path.
# `shardproxy gen` writes this recipe beside compose.yaml; `docker compose build` makes it.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends mergerfs fuse3 \
    && rm -rf /var/lib/apt/lists/*
# A killed mergerfs leaves its mount point stale ("Transport endpoint is not connected")
# and mounting there again fails: clear it (the last argument) first, then run mergerfs
# in the foreground, as a container's process must be.
ENTRYPOINT ["/bin/sh", "-c", "for last; do :; done; fusermount3 -uz \"$last\" 2>/dev/null; mkdir -p \"$last\" && exec mergerfs -f \"$@\"", "mergerfs"]
