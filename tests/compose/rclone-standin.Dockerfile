# rclone's image (rclone/rclone:<version>) stood in for by scripts/compose-test.sh, built
# offline on the Debian base: the same rclone release as the tag (the static binary
# scripts/setup.sh installs), fusermount3 from fuse3, and the entrypoint `rclone`, as in
# rclone's own image.
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends fuse3 \
    && rm -rf /var/lib/apt/lists/*
COPY rclone /usr/local/bin/rclone
ENTRYPOINT ["rclone"]
