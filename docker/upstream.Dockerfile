# The delayed upstream API of the compose topology (service `upstream` in docker-compose.yml):
# Debian's nginx with its echo module, the packages the local backend runs. The official nginx
# image has no echo module, hence this image. It holds no config: docker/upstream.conf, rendered
# from nginx/upstream.conf.j2, is mounted at /etc/nginx/nginx.conf. No `# syntax=` line: nothing
# here needs a newer Dockerfile frontend, so a build needs no registry but for the base.
# A different bookworm base (a local mirror's, one built with debootstrap):
#   docker compose build --build-arg DEBIAN_IMAGE=... upstream
ARG DEBIAN_IMAGE=debian:12.9-slim
FROM ${DEBIAN_IMAGE}

# policy-rc.d: the nginx package's postinst must not start a server during the build (the
# official Debian images ship this file; a base built with debootstrap does not).
# curl: the compose health check (GET /healthz), as in the official nginx image.
# error.log: nginx opens its compiled-in error log before reading the config; to stderr too.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d \
    && chmod 0755 /usr/sbin/policy-rc.d \
    && apt-get update \
    && apt-get install -y --no-install-recommends nginx libnginx-mod-http-echo curl \
    && rm -rf /var/lib/apt/lists/* \
    && ln -sf /dev/stderr /var/log/nginx/error.log \
    && test -f /usr/lib/nginx/modules/ngx_http_echo_module.so

# The mounted config says the rest: `daemon off;`, the user (www-data), pid and log paths.
CMD ["nginx", "-c", "/etc/nginx/nginx.conf"]
