# shardproxy as a sidecar next to NzbDav and the rclone shards (the product only: the
# NzbDav stand-in used by the tests is not in the image).
#   docker build -t shardproxy .
#   docker run --rm -p 8765:8765 -e SHARDPROXY_BACKEND=http://nzbdav:3000 shardproxy
# Every setting comes from SHARDPROXY_<NAME> variables (see docs/configuration.md).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shardproxy ./shardproxy
# A virtualenv works the same on the official image and on a plain Debian python3.
RUN python3 -m venv /opt/shardproxy \
    && /opt/shardproxy/bin/pip install --no-cache-dir --disable-pip-version-check . \
    && /opt/shardproxy/bin/pip uninstall -y -q pip

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin shardproxy \
    && mkdir -p /var/lib/shardproxy && chown shardproxy /var/lib/shardproxy
COPY --from=build /opt/shardproxy /opt/shardproxy
COPY docker/shardproxy.toml /etc/shardproxy/shardproxy.toml
# Image defaults live in a file, the lowest layer, so SHARDPROXY_* variables override
# them. The RC retry queue (rc_pending_file) is kept in STATE_DIRECTORY: mount a volume
# there to keep it across container restarts.
ENV PATH=/opt/shardproxy/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SHARDPROXY_CONFIG=/etc/shardproxy/shardproxy.toml \
    STATE_DIRECTORY=/var/lib/shardproxy
VOLUME /var/lib/shardproxy
USER shardproxy
# WebDAV, the RC endpoint (when SHARDPROXY_RC_LISTEN=:5575), the admin listener.
EXPOSE 8765 5575 8766
# Probes /healthz on the configured admin_listen (or, without one, the WebDAV port).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD ["shardproxy", "healthcheck"]
ENTRYPOINT ["shardproxy"]
CMD ["serve"]
