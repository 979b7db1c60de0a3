# shardproxy as a sidecar next to NzbDav and the rclone shards.
#   docker build -t shardproxy .
#   docker run --rm -p 8765:8765 -e SHARDPROXY_BACKEND=http://nzbdav:3000 \
#       -e SHARDPROXY_LISTEN=:8765 shardproxy
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shardproxy ./shardproxy
COPY nzbdav_standin ./nzbdav_standin
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 shardproxy \
    && mkdir -p /var/lib/shardproxy && chown shardproxy /var/lib/shardproxy
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER shardproxy
# Inside a container "all interfaces" is the only useful address; the RC endpoint still
# refuses to listen beyond loopback without --rc-user/--rc-pass.
ENV SHARDPROXY_LISTEN=:8765
# The RC retry queue (rc_pending_file) is kept here: mount a volume to keep it across
# container restarts.
ENV STATE_DIRECTORY=/var/lib/shardproxy
VOLUME /var/lib/shardproxy
EXPOSE 8765 5572
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import socket; socket.create_connection(('127.0.0.1', 8765), 2)"
ENTRYPOINT ["shardproxy"]
CMD ["serve"]
