# A stand-in for postgres:15-bookworm where no image registry is reachable: Debian 12's
# PostgreSQL 15 from the apt mirror, with an entrypoint that initialises the cluster as the
# official image does for what docker-compose.yml uses (postgres-entrypoint.sh).
# Build context: this directory. Built by gatewaybench/compose/images.py.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}

# create_main_cluster = false: the package would create a cluster the entrypoint never uses
# (the official image turns it off the same way). policy-rc.d: postinst starts no server.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d \
    && chmod 0755 /usr/sbin/policy-rc.d \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-common \
    && sed -ri 's/#(create_main_cluster) .*$/\1 = false/' /etc/postgresql-common/createcluster.conf \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/*

# The real binaries first on PATH (not Debian's pg_wrapper, which wants a cluster registry):
# postgres, initdb, pg_ctl, psql and pg_isready, for the entrypoint and for health checks.
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8
# No VOLUME: docker-compose.yml mounts a named volume here, and an anonymous one would be left
# behind by every container removed without its volumes.
RUN mkdir -p /docker-entrypoint-initdb.d "$PGDATA" /var/run/postgresql \
    && chown postgres:postgres "$PGDATA" /var/run/postgresql \
    && chmod 0700 "$PGDATA" \
    && chmod 3777 /var/run/postgresql

COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 0755 /usr/local/bin/docker-entrypoint.sh

ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 5432
# SIGINT: PostgreSQL's "fast" shutdown, as the official image does.
STOPSIGNAL SIGINT
CMD ["postgres"]
