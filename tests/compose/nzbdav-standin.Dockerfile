# The NzbDav stand-in as the image the compose file names (nzbdav/nzbdav), for
# scripts/compose-test.sh: test equipment, never shipped. It runs on the shardproxy
# image's interpreter, which already has everything the stand-in imports, so it builds
# offline in seconds. Listens on :3000 like NzbDav; `command:` adds the stand-in's flags.
ARG PRODUCT=localhost/shardproxy:latest
FROM ${PRODUCT}
COPY nzbdav_standin /opt/nzbdav-standin/nzbdav_standin
ENV PYTHONPATH=/opt/nzbdav-standin
HEALTHCHECK NONE
ENTRYPOINT ["/opt/shardproxy/bin/python", "-m", "nzbdav_standin", "--listen", "0.0.0.0:3000"]
CMD []
