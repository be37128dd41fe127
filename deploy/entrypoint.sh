#!/bin/sh
# Every step the container image runs, as one script: the Dockerfile's build (collectstatic), the
# container's start (migrate, check, serve) and its HEALTHCHECK. CI runs this same script outside
# a container (.ci/deploy-check), so what the image does is tested on every run.
#
#   keyvault-entrypoint collectstatic   static files into $KEYVAULT_VAR_DIR/staticfiles (build)
#   keyvault-entrypoint migrate         database migrations (one instance, before the others)
#   keyvault-entrypoint check           Django's and Keyvault's deployment checks; errors stop
#   keyvault-entrypoint serve           gunicorn with the settings shipped in the package
#   keyvault-entrypoint start           check, migrate unless KEYVAULT_MIGRATE_ON_START=false, serve
#   keyvault-entrypoint healthcheck     GET /healthz on this host; exit 0 only on 200
#   keyvault-entrypoint <command> …     any other keyvault command (createsuperuser, rotate_kek, …)
#
# It needs the installed `keyvault` command on PATH (with its python beside it) and the
# production environment (deploy/keyvault.env.example); it never reads a .env file.
set -eu

keyvault_bin=$(command -v keyvault) || { echo "keyvault-entrypoint: the keyvault command is not on PATH" >&2; exit 1; }
python=$(dirname "$keyvault_bin")/python

gunicorn_conf() {
    "$python" -c 'import config, pathlib; print(pathlib.Path(config.__file__).with_name("gunicorn.conf.py"))'
}

check() {
    # --deploy adds Django's HTTPS checks to Keyvault's own (a KEK, a strong SECRET_KEY, every
    # stored KEK loaded): any error refuses the start.
    keyvault check --deploy
}

migrate() {
    keyvault migrate --noinput
}

serve() {
    # exec: gunicorn becomes this process, so a container's or systemd's SIGTERM reaches it
    # directly and its graceful stop flushes the usage counters.
    exec "$(dirname "$keyvault_bin")/gunicorn" -c "$(gunicorn_conf)" config.wsgi
}

healthcheck() {
    bind=${GUNICORN_BIND:-0.0.0.0:8000}
    port=${bind##*:}
    KEYVAULT_HEALTH_URL=${KEYVAULT_HEALTH_URL:-http://127.0.0.1:$port/healthz} "$python" - <<'PY'
import os, sys, urllib.request

try:
    with urllib.request.urlopen(os.environ["KEYVAULT_HEALTH_URL"], timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:  # noqa: BLE001 (any failure is "unhealthy")
    print(f"keyvault-entrypoint: unhealthy: {exc}", file=sys.stderr)
    sys.exit(1)
PY
}

command=${1:-start}
[ "$#" -gt 0 ] && shift
case "$command" in
    collectstatic) keyvault collectstatic --noinput -v0 ;;
    migrate) migrate ;;
    check) check ;;
    serve) serve ;;
    start)
        check
        if [ "${KEYVAULT_MIGRATE_ON_START:-true}" != "false" ]; then migrate; fi
        serve
        ;;
    healthcheck) healthcheck ;;
    *) exec keyvault "$command" "$@" ;;
esac
