# objstore in a container. The build stage compiles the project on Debian
# bookworm with the packages of scripts/setup and makes the .deb; the runtime
# stage installs that .deb, so a container gets exactly what a host gets (the
# runtime libraries dpkg-shlibdeps found, the objstore user, /var/lib/objstore)
# and nothing of the compiler.
#
#   docker build -t objstore .
#   docker run -d -p 10999:10999 -v objstore-data:/var/lib/objstore objstore
#
# Settings are the environment variables of `objstore --help` (SPEC §6), e.g.
# -e S3_BUCKET_NAME=... -e AWS_ACCESS_KEY_ID=...; deploy/docker-compose.yml
# runs a three-node cluster.
FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/setup scripts/setup
RUN scripts/setup
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF \
    && cmake --build build \
    && cd build && cpack -B /out

FROM debian:bookworm-slim
COPY --from=build /out/objstore_*.deb /tmp/
RUN apt-get update \
    && apt-get install -y --no-install-recommends /tmp/objstore_*.deb \
    && rm -rf /var/lib/apt/lists/* /tmp/objstore_*.deb
# The data directories of /etc/default/objstore; a volume keeps them.
ENV APP_STATE_DIR=/var/lib/objstore/state \
    APP_FILES_DIR=/var/lib/objstore/files \
    APP_COLD_DIR=/var/lib/objstore/coldstore
USER objstore
WORKDIR /var/lib/objstore
VOLUME /var/lib/objstore
# Public API, private (cluster) API.
EXPOSE 10999 11999
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s \
    CMD ["objstore-cli", "--node", "http://127.0.0.1:10999", "--connect-timeout", "2", "ping"]
ENTRYPOINT ["objstore"]
