#!/bin/sh
# The backup restore drill: restore a database dump into a fresh, throwaway database and, with
# the KEKs (kept apart from the dump), open every stored secret. Run it on each backup you
# would rely on; it proves that the dump and the KEKs you hold belong together.
#
#   deploy/restore-drill.sh /backups/keyvault-2026-12-01.dump
#
# The dump is pg_dump's custom format (pg_dump -Fc), as docs/deployment.md makes it. The
# PostgreSQL server to restore into is PGHOST, PGPORT, PGUSER (PGPASSWORD or ~/.pgpass); the
# user may create databases. The KEKs come as for the server: KEYVAULT_KEKS, KEYVAULT_KEKS_FILE
# or KEYVAULT_KMS_KEYS. It needs the installed `keyvault` command on PATH. The throwaway
# database is dropped at the end, whatever happens. Exits 0 only when the restored database
# holds secrets and every one of them opens.
set -eu

dump=${1:?usage: restore-drill.sh DUMP_FILE}
[ -r "$dump" ] || { echo "restore-drill: cannot read $dump" >&2; exit 1; }
command -v keyvault >/dev/null || { echo "restore-drill: the keyvault command is not on PATH" >&2; exit 1; }

db="keyvault_restore_drill_$(date +%s)_$$"
host=${PGHOST:-127.0.0.1}
port=${PGPORT:-5432}
user=${PGUSER:-postgres}
cleanup() { dropdb --if-exists -h "$host" -p "$port" -U "$user" "$db" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

echo "restore-drill: restoring $dump into $db"
createdb -h "$host" -p "$port" -U "$user" "$db"
# The dump's owner and grants belong to the production server, not to this one.
pg_restore --no-owner --no-acl --exit-on-error -h "$host" -p "$port" -U "$user" -d "$db" "$dump"

stored=$(psql -tA -h "$host" -p "$port" -U "$user" -d "$db" -c "SELECT count(*) FROM keyvault_providerkey")
if [ "$stored" -eq 0 ]; then
    echo "restore-drill: the restored database holds no provider keys: is this the right dump?" >&2
    exit 1
fi

# Only the variables the check needs: nothing from a development checkout can help it.
report=$(DEBUG=false DATABASE_URL="postgres://$user@$host:$port/$db" \
    keyvault keyvault_status --verify) || {
    printf '%s\n' "$report"
    echo "restore-drill: FAILED: not every secret of the restored database opens with these KEKs" >&2
    exit 1
}
printf '%s\n' "$report"
printf '%s\n' "$report" | grep -qx "Verified $stored secrets." || {
    echo "restore-drill: FAILED: $stored keys restored, but not all of them were verified" >&2
    exit 1
}
echo "restore-drill: OK: all $stored secrets of the restored database open with these KEKs"
