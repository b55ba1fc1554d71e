#!/usr/bin/env bash
# Regenerate the committed sample dumps from reference_schema.sql + seed.sql with a real PostgreSQL,
# and prove each dump restores to identical data. Run by hand after changing the schema or the seed:
#
#   bash tests/postgres/regen_samples.sh            # keeps seed.sql as committed
#   bash tests/postgres/regen_samples.sh --seed     # first re-runs gen_seed.py (needs argon2-cffi)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
H="$HERE/pg_harness.sh"

if [ "${1:-}" = "--seed" ]; then python3 "$HERE/gen_seed.py"; fi

DIR="$(mktemp -d /tmp/ares-pg-regen.XXXXXX)"
trap '"$H" destroy "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT

"$H" start "$DIR" >/dev/null
"$H" load "$DIR" ares
"$H" dump "$DIR" "$HERE/sample_dump_copy.sql" copy
"$H" dump "$DIR" "$HERE/sample_dump_inserts.sql" inserts
"$H" dump "$DIR" "$HERE/sample_dump_column_inserts.sql" column-inserts

# Fingerprint of every table's content (order-independent), compared across restores.
Q="select string_agg(t, ',' order by t) from (select format('%s:%s', c.relname,
     (xpath('/row/c/text()', query_to_xml(format(
        'select md5(coalesce(string_agg(x::text, %L order by x::text), %L)) as c from public.%I x',
        '|', '', c.relname), false, true, '')))[1]::text) t
   from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where n.nspname = 'public' and c.relkind = 'r') s"
want="$("$H" psql "$DIR" -d ares -At -c "$Q")"
for m in copy inserts column_inserts; do
    "$H" load "$DIR" "restore_$m" "$HERE/sample_dump_$m.sql"
    got="$("$H" psql "$DIR" -d "restore_$m" -At -c "$Q")"
    [ "$got" = "$want" ] || { echo "restore of sample_dump_$m.sql differs from the seeded database" >&2; exit 1; }
    echo "sample_dump_$m.sql restores to identical data" >&2
done
"$H" psql "$DIR" -d ares -At -F' ' -c "select relname, n_live_tup from pg_stat_user_tables order by relname" >&2
echo "pg_dump: $("$("$H" ensure | sed -n 's/^PG_BINDIR=//p')/pg_dump" --version)" >&2
