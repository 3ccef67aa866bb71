#!/bin/sh
# Starts the compose stack's Kafka (ops/kafka/server.properties): the PEM keystore from the
# certs service's files, the storage formatted on the first start with the admin principal's
# SCRAM-SHA-512 credential (KAFKA_ADMIN_PASSWORD; `pms kafka setup` adds every other principal),
# then the server. A volume formatted by an earlier stack without SASL needs `docker compose
# down -v` once.
set -eu
: "${KAFKA_ADMIN_PASSWORD:?set KAFKA_ADMIN_PASSWORD}"
: "${CLUSTER_ID:?}"
umask 077
cat /certs/kafka-key.pem /certs/kafka.pem /certs/ca.pem > /tmp/kafka-keystore.pem
if [ ! -f /var/lib/kafka/data/meta.properties ]; then
  /opt/kafka/bin/kafka-storage.sh format --config /opt/pms/server.properties --cluster-id "$CLUSTER_ID" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$KAFKA_ADMIN_PASSWORD]"
fi
exec /opt/kafka/bin/kafka-server-start.sh /opt/pms/server.properties
