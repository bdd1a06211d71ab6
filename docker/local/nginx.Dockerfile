# A stand-in for nginx:1.27-bookworm where no image registry is reachable: Debian 12's nginx from
# the apt mirror, laid out like the official image where the harness relies on it (an `nginx`
# user and group, /var/cache/nginx, logs to the container's stdout and stderr). It carries the
# echo module too, so it also serves as the delayed upstream (docker/upstream.conf).
# Build context: this directory (nothing is copied in). Built by gatewaybench/compose/images.py.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}

# policy-rc.d: the nginx package's postinst must not start a server during the build (a base
# built with mmdebstrap has no such file).
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d \
    && chmod 0755 /usr/sbin/policy-rc.d \
    && apt-get update \
    && apt-get install -y --no-install-recommends nginx libnginx-mod-http-echo curl \
    && rm -rf /var/lib/apt/lists/* \
    && test -f /usr/lib/nginx/modules/ngx_http_echo_module.so

# The official image's worker user and cache directory (docker/nginx.conf: `user nginx nginx`,
# temp paths under /var/cache/nginx); its log files are the container's stdout and stderr, so
# the access log reaches `docker logs`, where the harness reads it.
RUN groupadd --system nginx \
    && useradd --system --gid nginx --no-create-home --home-dir /nonexistent \
        --shell /bin/false --comment "nginx user" nginx \
    && mkdir -p /var/cache/nginx \
    && chown nginx:nginx /var/cache/nginx \
    && ln -sf /dev/stdout /var/log/nginx/access.log \
    && ln -sf /dev/stderr /var/log/nginx/error.log

EXPOSE 80
# SIGQUIT: a graceful stop, as the official image does.
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
