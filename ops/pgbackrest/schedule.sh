#!/bin/sh
# pgBackRest's schedule in compose (the `pgbackrest` service): the stanza is created
# (idempotent) and checked (archiving works), a full backup is taken when the repository has
# none, then every day at 01:00 UTC a full backup on Sundays and a differential on the other
# days; `expire` runs after each backup under repo1-retention-full. A failed backup exits the
# loop so compose restarts the service and its health check turns unhealthy.
set -eu
stanza=pms
pgbackrest --stanza="$stanza" stanza-create
pgbackrest --stanza="$stanza" check
if ! pgbackrest --stanza="$stanza" info --output=json | grep -q '"type":"full"'; then
	pgbackrest --stanza="$stanza" --type=full backup
fi
while :; do
	next=$(date -u -d 'tomorrow 01:00' +%s)
	sleep $((next - $(date -u +%s)))
	if [ "$(date -u +%u)" = 7 ]; then type=full; else type=diff; fi
	pgbackrest --stanza="$stanza" --type="$type" backup
done
