#!/bin/sh
# HEALTHCHECK of the vttiro images: liveness (GET /healthz) of whichever listener this
# container runs. `vttiro serve` answers on VTTIRO_LISTEN (HTTPS when VTTIRO_TLS_CERT is
# set); `vttiro worker` answers on VTTIRO_METRICS_LISTEN. VTTIRO_HEALTHCHECK_URL, when set,
# is probed instead. Exit status 0 is healthy, 1 unhealthy, as Docker expects.
# crates/vttiro-cli/tests/containers.rs runs it against a real `vttiro serve` and `worker`.
set -u

probe() {
    curl --fail --silent --show-error --max-time 5 --output /dev/null "$@"
}

# The address to dial for a listen address HOST:PORT: wildcard hosts become loopback.
dial() {
    host=${1%:*}
    port=${1##*:}
    case "$host" in
        "" | 0.0.0.0 | "*") host=127.0.0.1 ;;
        "[::]") host="[::1]" ;;
    esac
    printf '%s:%s' "$host" "$port"
}

if [ -n "${VTTIRO_HEALTHCHECK_URL:-}" ]; then
    probe "$VTTIRO_HEALTHCHECK_URL" && exit 0
    exit 1
fi

api=$(dial "${VTTIRO_LISTEN:-127.0.0.1:8080}")
if [ -n "${VTTIRO_TLS_CERT:-}" ]; then
    # The certificate names the public host, not the loopback address dialled here;
    # liveness needs no identity check.
    probe --insecure "https://${api}/healthz" 2>/dev/null && exit 0
else
    probe "http://${api}/healthz" 2>/dev/null && exit 0
fi

if [ -n "${VTTIRO_METRICS_LISTEN:-}" ]; then
    probe "http://$(dial "$VTTIRO_METRICS_LISTEN")/healthz" && exit 0
fi
echo "vttiro-healthcheck: no /healthz answered on ${VTTIRO_LISTEN:-127.0.0.1:8080} or ${VTTIRO_METRICS_LISTEN:-(no metrics listener)}" >&2
exit 1
