#!/bin/sh
# The official mongo image's contract, for FerretDB: MONGO_INITDB_ROOT_USERNAME and _PASSWORD
# make a user in `admin` (with authentication on) when the data directory is new.
set -eu
if [ -n "${MONGO_INITDB_ROOT_USERNAME:-}" ]; then
    : "${MONGO_INITDB_ROOT_PASSWORD:?MONGO_INITDB_ROOT_USERNAME is set: set MONGO_INITDB_ROOT_PASSWORD too}"
    export FERRETDB_TEST_ENABLE_NEW_AUTH=true \
        FERRETDB_SETUP_DATABASE=admin \
        FERRETDB_SETUP_USERNAME="$MONGO_INITDB_ROOT_USERNAME" \
        FERRETDB_SETUP_PASSWORD="$MONGO_INITDB_ROOT_PASSWORD"
fi
# As the official entrypoint: a first argument that is an option means mongod's options (the
# Kubernetes manifests pass --bind_ip_all). FerretDB takes its settings from the environment
# and already listens on every address; an option with no such equivalent is refused.
case ${1:-} in
-*)
    for option; do
        case $option in
        --bind_ip_all) ;;
        *) echo "mongo-entrypoint.sh: mongod's $option has no FerretDB equivalent" >&2; exit 2 ;;
        esac
    done
    set -- ferretdb
    ;;
esac
exec "$@"
