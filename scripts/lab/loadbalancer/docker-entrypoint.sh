#!/bin/sh
# /docker-entrypoint.sh of the kind lab's stand-in for docker.io/envoyproxy/envoy, as Envoy's
# own: arguments that start with an option run envoy, and the command runs as user envoy
# (uid 101) unless ENVOY_UID=0. kind passes `bash -c "... envoy -c /home/envoy/envoy.yaml ..."`.
set -e
if [ "${1#-}" != "$1" ]; then
    set -- envoy "$@"
fi
if [ "${ENVOY_UID:-101}" != 0 ] && [ "$(id -u)" = 0 ]; then
    exec setpriv --reuid="${ENVOY_UID:-101}" --regid="${ENVOY_GID:-101}" --clear-groups "$@"
fi
exec "$@"
