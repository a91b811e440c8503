#!/bin/sh
# The engine container's entrypoint (as the release's dagger-entrypoint.sh, plus the mirror):
# the stand-in registries (docker.io mirror, publish tests), then tini -> dagger-engine.
set -e
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then  # cgroup v2: enable nesting (as upstream)
    mkdir -p /sys/fs/cgroup/init
    xargs -rn1 < /sys/fs/cgroup/cgroup.procs > /sys/fs/cgroup/init/cgroup.procs || :
    sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers \
        > /sys/fs/cgroup/cgroup.subtree_control
fi
# every registry configured: the read-only docker.io mirror, and the publish tests' registry
# (htpasswd auth) when `setup-dagger.sh start` mounts its config
for conf in /etc/nbpipe/registries/*.yml; do
    docker-registry serve "$conf" >"/var/log/nbpipe-$(basename "$conf" .yml).log" 2>&1 &
done
ulimit -n 1048576 || echo "cannot increase open FDs with ulimit, ignoring"
exec tini -- dagger-engine --config /etc/dagger/engine.toml "$@"
